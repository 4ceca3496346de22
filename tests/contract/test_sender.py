"""One set of expectations for every Sender (core.ports): SMTP to a real aiosmtpd, the
dry-run sender that prints, and the in-memory one. Each hands on the whole digest."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from inboxwatch.config import Smtp
from inboxwatch.core.ports import Sender
from inboxwatch.delivery.smtp import SmtpSender, StdoutSender
from tests.integration.test_digest import demo_message
from tests.memory import MemorySender
from tests.smtp import smtp_server

Delivered = Callable[[], list[EmailMessage]]


@pytest.fixture(params=["smtp", "dry-run", "memory"])
def sender(request: pytest.FixtureRequest) -> Iterator[tuple[Sender, Delivered]]:
    if request.param == "smtp":
        with smtp_server(request.getfixturevalue("ca"), "plain") as (handler, port):
            config = Smtp(host="127.0.0.1", port=port, security="plain", retries=0)
            yield SmtpSender(config), lambda: handler.received
    elif request.param == "dry-run":
        out = io.StringIO()

        class Printing:
            def send(self, msg: EmailMessage) -> None:
                with redirect_stdout(out):
                    StdoutSender().send(msg)

        def printed() -> list[EmailMessage]:
            # What is printed is UTF-8 text with 8bit parts: parsed as the bytes it is (a
            # str parse would read 8bit bodies as raw-unicode-escape).
            parsed = message_from_bytes(out.getvalue().encode("utf-8"), policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            return [parsed]

        yield Printing(), printed
    else:
        memory = MemorySender()
        yield memory, lambda: memory.sent


def test_the_whole_digest_is_handed_on(sender):
    send, delivered = sender
    message = demo_message()
    send.send(message)
    [got] = delivered()
    for header in ("Message-ID", "Subject", "To", "From", "Date"):
        assert got[header] == message[header], header
    for kind in ("plain", "html"):
        sent_part = message.get_body((kind,))
        got_part = got.get_body((kind,))
        assert sent_part is not None and got_part is not None

        # Line ends may travel as CRLF (RFC 5321 2.3.8); the text must not change.
        def text(part: EmailMessage) -> str:
            return str(part.get_content()).replace("\r\n", "\n").strip()

        assert text(got_part) == text(sent_part)
