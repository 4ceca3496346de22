"""How inboxwatch reaches servers and reads what they refuse with, for IMAP and SMTP alike.

No imapclient here (the `imap` package is its only importer): loopback and TLS policy,
and the provider replies that mean "slow down" or "try later" rather than "wrong
password".
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
from collections.abc import Callable
from contextlib import suppress

from inboxwatch.errors import AuthError, InboxwatchError, ServerError

_BACKOFF = re.compile(r"Suggested Backoff Time:\s*(\d+)\s*milliseconds", re.IGNORECASE)
# RFC 5530 response codes that mean "try again later", not "wrong password".
_TRANSIENT_CODES = ("[UNAVAILABLE]", "[LIMIT]", "[INUSE]", "[SERVERBUG]", "[CONTACTADMIN]")


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tls_context(ca_file: str) -> ssl.SSLContext:
    """System trust store plus an optional private CA; verification is never off."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def throttled(host: str, text: str) -> ServerError | None:
    """Provider throttling and connection limits: transient, never a bad password.

    Microsoft 365: `BAD Request is throttled. Suggested Backoff Time: N milliseconds`.
    Gmail: `[ALERT] Too many simultaneous connections`.
    """
    suggested = _BACKOFF.search(text)
    if suggested or "throttl" in text.lower():
        wait = int(suggested.group(1)) / 1000 if suggested else 60.0
        return ServerError(
            f"{host} is throttling this client ({text.strip()}); waiting "
            f"{wait:g}s before trying again",
            retry_after=wait,
        )
    if "too many simultaneous connections" in text.lower() or "[LIMIT]" in text.upper():
        return ServerError(
            f"{host} has too many connections open for this account "
            f"({text.strip()}); close other mail clients or try again later",
            retry_after=60.0,
        )
    return None


def login_error(host: str, text: str) -> InboxwatchError:
    """Tell a wrong password (exit 4) from a server that is busy or refusing (exit 5)."""
    busy = throttled(host, text)
    if busy is not None:
        return busy
    if any(code in text.upper() for code in _TRANSIENT_CODES):
        return ServerError(f"{host} refused the login for now ({text.strip()}); try again later")
    hint = "check username and password"
    if "application-specific" in text.lower() or "gmail" in host.lower():
        hint += " (Gmail needs an app password: see the README FAQ)"
    return AuthError(f"login to {host} failed: {text.strip() or 'rejected'}; {hint}")


def server_text(exc: Exception) -> str:
    """The server's words from an imapclient error, which may carry a bytes repr."""
    arg = exc.args[0] if exc.args else ""
    text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
    text = re.sub(r"b'(.*)'", r"\1", text, flags=re.DOTALL).replace("\\r", " ").replace("\\n", " ")
    return " ".join(text.split())


class Deadline:
    """Shuts a connection down when one operation outlasts `seconds`. A socket timeout
    bounds each read only: a server sending a byte per read (a broken middlebox, a
    tarpit) would hold the operation, and in the service every other account, forever.
    `target` names the socket when the timer fires, so it may be set during the call."""

    def __init__(self, seconds: float, target: Callable[[], socket.socket | None]) -> None:
        self.expired = False
        self._target = target
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.expired = True
        sock = self._target()
        if sock is not None:
            with suppress(OSError):  # already closed: nothing left to stop
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
