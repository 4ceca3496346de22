"""How inboxwatch reaches servers and reads what they refuse with, for IMAP and SMTP alike.

No imapclient here (the `imap` package is its only importer): loopback and TLS policy,
and the provider replies that mean "slow down" or "try later" rather than "wrong
password".
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

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


# One operation (connect, greeting and login; an IMAP command; an SMTP transaction) may
# take this many times the timeout. The timeout bounds each read, so a silent server is
# given up after the timeout with "did not answer", while a server trickling bytes is cut
# here; a deadline equal to the timeout would fire first and hide which it was.
OPERATION_DEADLINE = 1.5


def operation_deadline(timeout: float) -> float:
    return timeout * OPERATION_DEADLINE


@contextmanager
def within(seconds: float, shut: Callable[[], object], slow: ServerError) -> Iterator[None]:
    """One operation within `seconds`: at the deadline `shut` (the connection) and raise
    `slow`. A read's own timeout error stays itself: a silent server "did not answer within",
    it did not answer too slowly. Once the deadline fired no answer is trusted, even one
    that seemed to arrive whole (a reply cut short by the shutdown reads as a complete one
    to smtplib: "250 que")."""
    with Deadline(seconds, shut) as deadline:
        try:
            yield
        except Exception as exc:
            if deadline.expired and not isinstance(exc, TimeoutError):
                raise slow from exc
            raise
    if deadline.expired:
        raise slow


def shut_down(sock: socket.socket | None) -> None:
    """Fail whatever another thread waits for on `sock`, at once."""
    if sock is not None:
        with suppress(OSError):  # already closed: nothing left to stop
            sock.shutdown(socket.SHUT_RDWR)


class Deadline:
    """Calls `on_expiry` (shut the connection down) when one operation outlasts `seconds`.
    A socket timeout bounds each read only: a server sending a byte per read (a broken
    middlebox, a tarpit) would hold the operation, and in the service every other
    account, forever. `on_expiry` runs in the watchdog's thread."""

    def __init__(self, seconds: float, on_expiry: Callable[[], object]) -> None:
        self.seconds = seconds
        self.expired = False
        self.cancelled = False
        self.on_expiry = on_expiry

    def start(self) -> Deadline:
        _WATCHDOG.watch(self)
        return self

    def cancel(self) -> None:
        """After this, `expired` no longer changes: if it is False, nothing was shut."""
        _WATCHDOG.cancel(self)

    def __enter__(self) -> Deadline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class _Watchdog:
    """One thread for every deadline of the process: a thread per deadline (threading.Timer)
    cost ~150 us to start, for each command of each folder of each account."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Deadline]] = []
        self._wake = threading.Condition()
        self._count = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Deadline) -> None:
        with self._wake:
            when = time.monotonic() + deadline.seconds
            heapq.heappush(self._due, (when, next(self._count), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            if self._due[0][2] is deadline:
                self._wake.notify()

    def cancel(self, deadline: Deadline) -> None:
        with self._wake:  # never between the watchdog's check and its `expired = True`
            deadline.cancelled = True
            deadline.on_expiry = _nothing  # what it would shut need not live on in the heap

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._wake.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, deadline = heapq.heappop(self._due)
                deadline.expired = not deadline.cancelled
            if deadline.expired:
                deadline.on_expiry()


def _nothing() -> None:
    return None


_WATCHDOG = _Watchdog()


# TCP keepalive on a session the service keeps between polls (service/sessions.py):
# probes after a minute of silence keep a NAT's or firewall's mapping alive (cloud NAT
# gateways drop idle flows after ~350 s, home routers sooner), and a peer that vanished
# is noticed within ~2.5 minutes, so the next command fails at once instead of waiting
# out the read timeout on a black-holed connection.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 60, 30, 3


def keep_alive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),  # Linux; macOS calls it TCP_KEEPALIVE
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        if hasattr(socket, option):
            with suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
