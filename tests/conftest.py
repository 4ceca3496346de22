"""Shared fixtures: a real Dovecot, a per-test mailbox seeded over IMAP, and CLI runners."""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import settings
from imapclient import IMAPClient

from inboxwatch.cli.main import main
from tests.dovecot import INSTALL_HINT, Dovecot, running

ROOT = Path(__file__).resolve().parent.parent
# CI replays the same Hypothesis examples every run (a landing must not hinge on luck);
# locally each run explores new ones.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
OWNER = "me@mydomain.example"
_users = itertools.count(1)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[Dovecot]:
    """One Dovecot for the session, with STARTTLS on `port` and implicit TLS on `tls_port`."""
    if not (shutil.which("dovecot") or Path("/usr/sbin/dovecot").exists()):
        pytest.fail(INSTALL_HINT, pytrace=False)
    # Not under pytest's 0700 tmp root: Dovecot's mail processes run as `dovecot`
    # when the tests run as root, and need +x on every parent directory.
    base = Path(tempfile.mkdtemp(prefix="inboxwatch-dovecot-"))
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(base / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(base / "cert.pem"))
    with running(base, cert=base / "cert.pem", key=base / "key.pem") as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One PostgreSQL for the session (tests/postgres.py); each test takes a new database."""
    from tests import postgres as pg

    try:
        server = pg.running()
        started = server.__enter__()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield started
    finally:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def ca_file(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


class Mailbox:
    """A fresh Dovecot user, seeded by IMAP APPEND with chosen flags and INTERNALDATEs."""

    def __init__(self, server: Dovecot, user: str) -> None:
        self.server = server
        self.user = user
        self.client = IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=10)
        self.client.login(user, server.password)

    def create(self, folder: str) -> None:
        self.client.create_folder(folder)

    def add(self, folder: str, message: bytes, when: datetime, flags: tuple[str, ...] = ()) -> None:
        self.client.append(folder, message, flags=[f.encode() for f in flags], msg_time=when)

    def bulk(self, folder: str, messages: list[tuple[bytes, datetime]]) -> None:
        """Many messages at once, written as Maildir files (~17x faster than APPEND);
        Dovecot indexes them on the next SELECT, the file's mtime becoming INTERNALDATE."""
        root = self.server.base / "mail" / self.user
        target = root / "cur" if folder == "INBOX" else root / f".{folder}" / "cur"
        target.mkdir(parents=True, exist_ok=True)
        for n, (message, when) in enumerate(messages):
            path = target / f"{int(when.timestamp())}.bulk{n}.test:2,S"
            path.write_bytes(message)
            os.utime(path, (when.timestamp(), when.timestamp()))
        if os.geteuid() == 0:
            for path in [root, *root.rglob("*")]:
                shutil.chown(path, "dovecot", "dovecot")

    def snapshot(self) -> dict[str, Any]:
        """Every folder's UIDs with their flags, read with EXAMINE (changes nothing)."""
        state: dict[str, Any] = {}
        for _flags, _delim, name in self.client.list_folders():
            info = self.client.select_folder(name, readonly=True)
            # Fetch by the SEARCH result: imapclient 4.1 raises on a "1:*" range string.
            uids = self.client.search(["ALL"]) if info[b"EXISTS"] else []
            fetched = self.client.fetch(uids, ["FLAGS"]) if uids else {}
            state[name] = sorted((uid, sorted(d[b"FLAGS"])) for uid, d in fetched.items())
        return state

    def close(self) -> None:
        self.client.logout()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Iterator[Mailbox]:
    box = Mailbox(dovecot, f"user{next(_users)}")
    yield box
    box.close()


@pytest.fixture
def sent_mailbox(mailbox: Mailbox) -> Mailbox:
    """A mailbox with the SPECIAL-USE `Sent` folder created, as most servers have."""
    mailbox.create("Sent")
    return mailbox


def mail(
    sender: str,
    to: str = OWNER,
    subject: str = "Hello",
    *,
    mid: str | None = None,
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
    cc: str | None = None,
    headers: dict[str, str] | None = None,
    date: datetime | None = None,
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    """A small RFC 5322 message; `mid=None` gives a unique Message-ID, `mid=""` none."""
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {format_datetime(date or NOW - timedelta(days=1))}",
    ]
    if mid != "":
        lines.append(f"Message-ID: {mid or f'<{next(_users)}.{os.getpid()}@test.example>'}")
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references:
        lines.append(f"References: {' '.join(references)}")
    if cc:
        lines.append(f"Cc: {cc}")
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    lines += [f"Content-Type: {content_type}", "MIME-Version: 1.0", "", "Body text.", ""]
    return "\r\n".join(lines).encode("utf-8")


def toml_value(value: Any) -> str:
    """A TOML value: JSON's for strings, numbers and lists of them; inline tables for
    dicts (`rules = [{from = [...], window = "4h"}]`)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def write_config(tmp_path: Path, server: Dovecot, user: str, **account: Any) -> Path:
    """A config.toml for one account on the test Dovecot (plain on loopback by default)."""
    values: dict[str, Any] = {
        "name": "work",
        "host": "127.0.0.1",
        "port": server.port,
        "security": "plain",
        "username": user,
        "password": server.password,
        "addresses": [OWNER],
    }
    values.update(account)
    body = "[[accounts]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    path.chmod(0o600)  # it holds the password; readable by others it would warn
    return path


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.out)
        return data


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run the CLI in-process and return exit code, stdout and stderr."""

    def invoke(*args: str) -> Result:
        code = main(list(args))
        # The CLI pointed logging at capsys's stream, which closes after the test.
        logging.getLogger().handlers.clear()
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def scan(run: Any, tmp_path: Path, dovecot: Dovecot, mailbox: Mailbox) -> Any:
    """`inboxwatch scan --format json` of the test mailbox, judged at NOW."""

    def invoke(*extra: str, **account: Any) -> Result:
        config = write_config(tmp_path, dovecot, mailbox.user, **account)
        return run(
            "scan", "--config", str(config), "--format", "json", "--as-of", NOW.isoformat(), *extra
        )

    return invoke


def corpus_dir() -> Path:
    """The shared corpus: $INBOXWATCH_CORPUS, else ../shared/corpus beside the project."""
    path = Path(os.environ.get("INBOXWATCH_CORPUS", ROOT.parent / "shared" / "corpus"))
    if not path.is_dir():
        if os.environ.get("INBOXWATCH_REQUIRE_CORPUS"):
            pytest.fail(f"corpus required but not found at {path}", pytrace=False)
        pytest.skip(f"shared corpus not found at {path} (set INBOXWATCH_CORPUS)")
    return path
