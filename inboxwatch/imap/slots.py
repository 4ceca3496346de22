"""How many connections one service opens to one IMAP server at once.

Accounts are polled side by side (`max_parallel`), and every account on a server is
another connection to it: a server that counts connections per client address
(Dovecot's `mail_max_userip_connections` counts per user and address; providers
throttle an address that opens many) sees them all. `max_per_server` caps the
connections to one host: an account's poll holds one slot for its session, and the
second connection that reads a big folder (imap.worker) is opened only when a slot
is free, else the session reads alone. Big providers limit connections per user (Gmail
about 15, Microsoft 365 about 20), which an account never nears with its two; the cap
is for the server as a whole, whose limits a few hundred mailboxes could reach.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Release = Callable[[], None]


def server(host: str) -> str:
    """Which server a host name is, for its cap: DNS names compare without case (RFC
    4343), so `IMAP.example.com` and `imap.example.com` share one."""
    return host.lower()


class ServerSlots:
    """A counted cap of connections per host, shared by the threads of one poll."""

    def __init__(self, per_server: int) -> None:
        self.per_server = per_server
        self._lock = threading.Lock()
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._open: dict[str, int] = {}
        self.peak: dict[str, int] = {}  # the most connections held at once, by host

    def _semaphore(self, host: str) -> threading.BoundedSemaphore:
        key = server(host)
        with self._lock:
            return self._hosts.setdefault(key, threading.BoundedSemaphore(self.per_server))

    def _count(self, host: str, step: int) -> None:
        key = server(host)
        with self._lock:
            self._open[key] = self._open.get(key, 0) + step
            self.peak[key] = max(self.peak.get(key, 0), self._open[key])

    def take(self, host: str, timeout: float | None = None) -> Release | None:
        """Wait for a slot on `host` (None after `timeout` seconds); the caller releases
        it once (a second call does nothing)."""
        if not self._semaphore(host).acquire(timeout=timeout):
            return None
        return self._holding(host)

    def spare(self, host: str) -> Release | None:
        """A slot on `host` if one is free now, else None (never waits)."""
        if not self._semaphore(host).acquire(blocking=False):
            return None
        return self._holding(host)

    @contextmanager
    def hold(self, host: str) -> Iterator[None]:
        """A slot on `host` for the block."""
        release = self.take(host)
        assert release is not None  # no timeout: take waits
        try:
            yield
        finally:
            release()

    def _holding(self, host: str) -> Release:
        self._count(host, 1)
        done = threading.Event()

        def release() -> None:
            with self._lock:
                if done.is_set():
                    return
                done.set()
            self._count(host, -1)
            self._semaphore(host).release()

        return release
