"""A server that answers one byte at a time, each within `timeout`, must not hold an
operation for longer than its deadline (issue 22, defect 8). `timeout` bounds each read;
the deadline bounds the whole operation: connect, banner and login; one transaction."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage

import pytest

from inboxwatch.config import Smtp
from inboxwatch.delivery.smtp import SmtpSender
from inboxwatch.errors import DeliveryError

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
