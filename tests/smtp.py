"""A real SMTP server (aiosmtpd) on a loopback port, in TLS, STARTTLS or plain mode."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.dovecot import free_port

USER, PASSWORD = "digest@example.com", "smtp-secret-42"


@dataclass
class Handler:
    """Keeps what was accepted; `fail_first` answers DATA with 451 that many times."""

    fail_first: int = 0
    drop_first: int = 0  # hang up after DATA (the message arrived, the reply did not)
    delay: float = 0.0  # seconds to sit on DATA before answering
    stall_first: float = 0.0  # the first DATA sits this long, then 451 (nothing kept)
    received: list[EmailMessage] = field(default_factory=list)
    attempts: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        self.attempts += 1
        if self.stall_first and self.attempts == 1:  # a sender killed while it waits
            await asyncio.sleep(self.stall_first)
            return "451 4.3.0 Stalled"
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.attempts <= self.fail_first:
            return "451 4.3.0 Try again later"
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        if self.attempts <= self.fail_first + self.drop_first:
            server.transport.close()
            return "250 2.0.0 never seen by the client"
        return "250 2.0.0 OK"


def authenticator(message: str = "", login: tuple[str, str] = (USER, PASSWORD)) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == login
            and not message
        )
        return AuthResult(success=ok, handled=False, message=message or None)

    return check


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


class TlsController(Controller):
    """Implicit TLS (port 465 style): readiness is probed with a client context."""

    def __init__(self, *args: Any, probe: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.probe = probe

    def _trigger_server(self) -> None:
        import socket

        with (
            socket.create_connection((self.hostname, self.port), 2.0) as raw,
            self.probe.wrap_socket(raw, server_hostname="localhost") as sock,
        ):
            sock.recv(1024)


@contextmanager
def smtp_server(
    ca: trustme.CA,
    mode: str = "plain",
    auth: bool = False,
    fail_first: int = 0,
    auth_message: str = "",
    drop_first: int = 0,
    delay: float = 0.0,
    stall_first: float = 0.0,
    port: int | None = None,
    login: tuple[str, str] = (USER, PASSWORD),
) -> Iterator[tuple[Handler, int]]:
    """mode: plain | starttls | tls | nostarttls (plain, no STARTTLS offered)."""
    handler = Handler(
        fail_first=fail_first, drop_first=drop_first, delay=delay, stall_first=stall_first
    )
    port = port or free_port()
    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": port}
    if auth:
        kwargs.update(
            authenticator=authenticator(auth_message, login),
            auth_required=True,
            # aiosmtpd does not count implicit TLS as TLS for this check.
            auth_require_tls=mode == "starttls",
        )
    if mode == "starttls":
        kwargs.update(tls_context=server_context(ca), require_starttls=True)
    if mode == "tls":
        probe = ssl.create_default_context()
        ca.configure_trust(probe)
        controller: Controller = TlsController(
            handler, ssl_context=server_context(ca), probe=probe, **kwargs
        )
    else:
        controller = Controller(handler, **kwargs)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()
