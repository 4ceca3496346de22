"""The digest through Apprise (`digest.notify`) to a local webhook (`json://`): posted once
per period, a failing service posted again and no other, its token in no error."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from inboxwatch.errors import ConfigError, DeliveryError
from inboxwatch.store.sqlite import SqliteStore
from tests.integration.test_service import T0, Recorder, seed, settings_for
from tests.polling import poll_once

pytestmark = pytest.mark.dovecot
TOKEN = "tok3n-s3cret"


class Hook(BaseHTTPRequestHandler):
    """A webhook: keeps each JSON body POSTed; answers 500 on the `failing` paths."""

    posts: ClassVar[list[dict[str, Any]]] = []
    failing: ClassVar[set[str]] = set()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        Hook.posts.append({"path": self.path, **json.loads(self.rfile.read(length))})
        self.send_response(500 if self.path in Hook.failing else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def webhook() -> Iterator[int]:
    Hook.posts, Hook.failing = [], set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()


def test_the_digest_is_posted_once_per_period_and_a_failed_post_alone_again(
    dovecot, sent_mailbox, tmp_path
):
    seed(sent_mailbox)
    H = timedelta(hours=1)
    with webhook() as port:
        urls = [f"json://127.0.0.1:{port}/a/{TOKEN}", f"json://127.0.0.1:{port}/b"]
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, to=[], notify=urls)
        store = SqliteStore(settings.state.path_resolved())
        mail = Recorder()
        Hook.failing = {f"/a/{TOKEN}"}
        with pytest.raises(DeliveryError) as failed:
            poll_once(settings, store, mail, T0)
        assert "posted to json://…;" in str(failed.value) and TOKEN not in str(failed.value)
        assert sorted(p["path"] for p in Hook.posts) == [f"/a/{TOKEN}", "/b"]
        Hook.posts, Hook.failing = [], set()
        poll_once(settings, store, mail, T0 + H)  # only the failed one again
        poll_once(settings, store, mail, T0 + 2 * H)  # nothing: both went out
        store.close()
    [post] = Hook.posts
    assert post["path"] == f"/a/{TOKEN}"
    assert post["title"] == "3 conversations waiting > 24h" and "Q0" in post["message"]
    assert not mail.sent  # digest.to is empty: no e-mail


def test_an_unknown_service_is_a_config_error(dovecot, sent_mailbox, tmp_path):
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path, notify=[f"nosuch://{TOKEN}"])
    store = SqliteStore(settings.state.path_resolved())
    try:
        with pytest.raises(ConfigError, match="nosuch://… is not a URL Apprise knows") as err:
            poll_once(settings, store, Recorder(), T0)
        assert TOKEN not in str(err.value)
    finally:
        store.close()
