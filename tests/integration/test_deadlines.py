"""A server that answers one byte at a time, each within `timeout`, must not hold an
operation for longer than its deadline (issue 22, defect 8). `timeout` bounds each read;
the deadline bounds the whole operation: connect, greeting and login; one IMAP command;
one SMTP transaction; and in the service, one account's whole poll."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage

import pytest

from inboxwatch.config import Settings, Smtp
from inboxwatch.delivery.smtp import SmtpSender
from inboxwatch.errors import DeliveryError
from inboxwatch.store.sqlite import SqliteStore
from tests.conftest import NOW
from tests.integration.test_faults import one_line, scripted_account, scripted_config
from tests.integration.test_service import Recorder
from tests.polling import poll_once
from tests.scripted_imap import DEFAULTS, ScriptedImap

TIMEOUT = 1.0
GOOD = {
    b"EHLO": b"250-slow.example\r\n250 8BITMIME\r\n",
    b"MAIL": b"250 ok\r\n",
    b"RCPT": b"250 ok\r\n",
    b"DATA": b"354 go on\r\n",
    b"QUIT": b"221 bye\r\n",
}


def _serve(conn: socket.socket, trickle: str, stop: threading.Event) -> None:
    """An SMTP server that sends the chosen answer a byte every TIMEOUT / 3 seconds."""

    def say(data: bytes, slow: bool) -> None:
        for byte in data if slow else [data]:
            if stop.is_set():
                return
            conn.sendall(bytes([byte]) if slow else byte)  # type: ignore[arg-type]
            if slow:
                time.sleep(TIMEOUT / 3)

    with conn:
        say(b"220 slow.example ESMTP at your service, eventually\r\n", trickle == "banner")
        reader = conn.makefile("rb")
        in_data = False
        while not stop.is_set():
            line = reader.readline()
            if not line:
                return
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    say(b"250 queued, at last, thank you for waiting\r\n", trickle == "data")
                continue
            verb = line[:4].upper()
            say(GOOD.get(verb, b"250 ok\r\n"), False)
            in_data = verb == b"DATA"


@contextmanager
def trickling_smtp(trickle: str) -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def accept() -> None:
        with listener:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=_serve, args=(conn, trickle, stop), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


@pytest.mark.parametrize("trickle", ["banner", "data"])
def test_an_smtp_server_sending_a_byte_at_a_time_meets_the_deadline(trickle):
    with trickling_smtp(trickle) as port:
        config = Smtp(
            host="127.0.0.1", port=port, security="plain", timeout=f"{TIMEOUT:g}s", retries=0
        )
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@x.example", "b@x.example", "s"
        message.set_content("hello")
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            SmtpSender(config).send(message)
        elapsed = time.monotonic() - started
    assert elapsed < 2 * TIMEOUT, elapsed
    assert "too slowly" in str(caught.value)


class Trickle:
    """`data` a byte at a time, each within the timeout: no single read ever times out."""

    def __init__(self, data: bytes, pause: float = TIMEOUT / 3) -> None:
        self.data = data
        self.pause = pause

    def __iter__(self) -> Iterator[bytes]:
        for byte in self.data:
            time.sleep(self.pause)
            yield bytes([byte])


def _slow(command: str) -> Callable[[str, str], Trickle]:
    def answer(tag: str, folder: str) -> Trickle:
        if command == "UID FETCH":
            return Trickle(ScriptedImap._fetch(tag, folder))
        return Trickle(DEFAULTS[command].replace(b"{tag}", tag.encode()))

    return answer


@pytest.mark.parametrize("command", ["greeting", "LOGIN", "EXAMINE", "UID SEARCH", "UID FETCH"])
def test_an_imap_server_sending_a_byte_at_a_time_meets_the_deadline(run, tmp_path, command):
    greeting = Trickle(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN ENABLE] ready, eventually\r\n")
    with (
        ScriptedImap(greeting=greeting)
        if command == "greeting"
        else ScriptedImap({command: _slow(command)})
    ) as server:
        config = scripted_config(tmp_path, server, timeout=f"{TIMEOUT:g}s")
        started = time.monotonic()
        result = run("scan", "--config", str(config))
        elapsed = time.monotonic() - started
    assert result.code == 5, result.err
    assert "too slowly" in one_line(result)
    assert elapsed < 2 * TIMEOUT, elapsed


def test_a_slow_account_ends_at_its_poll_deadline_and_the_next_is_read(tmp_path):
    """Every answer comes within the timeout, but twenty folders take 10 s: the poll of that
    account ends at service.account_timeout, and the account after it is read."""
    folders = [f"F{i}" for i in range(20)]

    def examine(tag: str, folder: str) -> list[bytes]:
        time.sleep(0.5)
        return [DEFAULTS["EXAMINE"].replace(b"{tag}", tag.encode())]

    listing = b"".join(b'* LIST () "/" ' + f.encode() + b"\r\n" for f in [*folders, "Sent"])
    script = {"EXAMINE": examine, "LIST": listing + b"{tag} OK done\r\n"}
    with ScriptedImap(script) as slow, ScriptedImap() as quick:
        settings = Settings(
            accounts=[
                scripted_account(
                    slow, name="slow", timeout="1s", folders=folders, sent_folders=["Sent"]
                ),
                scripted_account(quick, name="quick"),
            ],
            service={"account_timeout": "2s"},
            state={"path": str(tmp_path / "s.db")},
        )
        store = SqliteStore(tmp_path / "s.db")
        started = time.monotonic()
        result = poll_once(settings, store, Recorder(), NOW)
        elapsed = time.monotonic() - started
        store.close()
    assert [e.account for e in result.report.errors] == ["slow"]
    assert "account_timeout" in result.report.errors[0].message
    assert [a.name for a in result.report.accounts] == ["quick"]
    assert elapsed < 2 * 2.0, elapsed
