"""Logged-in IMAP sessions a running service keeps between polls, each with its slot.

A poll with nothing new is then one EXAMINE a folder on a session already open (all
sent together: one round trip), where a new login costs the connection, the greeting,
TLS, LOGIN, ENABLE and LOGOUT: ~0.8 s of a 100 ms link (issue 21). A kept session holds
its server's slot (imap.slots), as an open connection counts for a server's limit; when
an account needs a slot and none is free, a kept idle session of that server is closed
to free one (the one given back last: see `_evict`), so keeping never starves a poll.

A kept session may have been dropped meanwhile (servers end idle sessions: RFC 3501
5.4 allows it after 30 minutes, some sooner). The quick check retries such an account
once on a new login (`retried`); a session idle longer than `VERIFY_AFTER` is sent a
NOOP before a poll reads with it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from inboxwatch.config import Account
from inboxwatch.core.fanout import side_by_side
from inboxwatch.errors import InboxwatchError, ServerError
from inboxwatch.imap.opener import open_imap
from inboxwatch.imap.slots import Release, ServerSlots, server
from inboxwatch.imap.source import ImapSource

log = logging.getLogger(__name__)
T = TypeVar("T")
VERIFY_AFTER = 60.0  # seconds idle after which a kept session is checked before a read
_WAIT_STEP = 0.05  # seconds between looks for a freed slot or a kept session to close


@dataclass
class _Kept:
    session: ImapSource
    release: Release
    since: float  # time.monotonic() when it was last given back


class Sessions:
    """Thread-safe: a poll's accounts open and give back sessions side by side."""

    def __init__(self, accounts: Mapping[str, Account], tokens: Path, slots: ServerSlots) -> None:
        self.accounts = accounts
        self.tokens = tokens
        self.slots = slots
        self._kept: dict[str, _Kept] = {}
        self._open: dict[int, Release] = {}  # by id(session): the slot of each in use
        self._lock = threading.Lock()

    def open(self, name: str, verify: bool = True) -> ImapSource:
        """The account's kept session (checked with a NOOP if it idled a while and
        `verify`), else a new login under a slot of its server."""
        with self._lock:
            kept = self._kept.pop(name, None)
        if kept is not None:
            idle = time.monotonic() - kept.since
            if not verify or idle < VERIFY_AFTER or kept.session.alive():
                with self._lock:
                    self._open[id(kept.session)] = kept.release
                return kept.session
            log.debug("%s: kept session was dropped; logging in again", name)
            _close(kept.session, kept.release)
        return self._login(name)

    def _login(self, name: str) -> ImapSource:
        account = self.accounts[name]
        release = self._slot(account.host)
        try:
            session = open_imap(account, self.tokens, self.slots, resync=True)()
        except BaseException:
            release()
            raise
        with self._lock:
            self._open[id(session)] = release
        return session

    def _slot(self, host: str) -> Release:
        """A slot on `host`: a free one, else one a kept idle session there gives up, else
        the first an account reading there gives back."""
        while True:
            release = self.slots.spare(host)
            if release is not None:
                return release
            if self._evict(host):
                continue
            release = self.slots.take(host, timeout=_WAIT_STEP)
            if release is not None:
                return release

    def _evict(self, host: str) -> bool:
        """Close the kept session on `host` given back last, if any. The last, not the
        oldest: a poll goes through the accounts in one order, so with more accounts
        than slots the oldest kept is the next one needed, and closing oldest first
        would close every session before its turn (least-recently-used thrashing on a
        cyclic order); closing the newest keeps all but a few for the next poll."""
        with self._lock:
            here = server(host)
            idle = [n for n in self._kept if server(self.accounts[n].host) == here]
            newest = max(idle, key=lambda n: self._kept[n].since, default=None)
            kept = self._kept.pop(newest) if newest is not None else None
        if kept is None:
            return False
        _close(kept.session, kept.release)
        return True

    def done(self, name: str, session: ImapSource, reusable: bool) -> None:
        """The account is done with `session`: kept for the next use (the read after a
        quick check, the next poll; `close` at the end), or closed if it failed."""
        with self._lock:
            release = self._open.pop(id(session))
        if not reusable:
            _close(session, release)
            return
        session.rest()
        with self._lock:
            self._kept[name] = _Kept(session, release, time.monotonic())

    def retried(self, name: str, work: Callable[[ImapSource], T]) -> T:
        """`work` on the account's session; once more on a new login when a kept one
        turns out dropped (a connection error, not the server's answer)."""
        with self._lock:
            was_kept = name in self._kept
        session = self.open(name, verify=False)
        try:
            result = work(session)
        except ServerError as exc:
            self.done(name, session, reusable=False)
            if not was_kept:
                raise
            log.debug("%s: kept session failed (%s); logging in again", name, exc)
            session = self.open(name)
            try:
                result = work(session)
            except InboxwatchError:
                self.done(name, session, reusable=False)
                raise
        except BaseException:
            self.done(name, session, reusable=False)
            raise
        self.done(name, session, reusable=True)
        return result

    def forget(self, name: str) -> None:
        """The account's kept session logged out (another replica polls it now)."""
        with self._lock:
            kept = self._kept.pop(name, None)
        if kept is not None:
            _close(kept.session, kept.release)

    def close(self, parallel: int = 1) -> None:
        """Every kept session logged out (the service stops), `parallel` at a time: a
        LOGOUT is a round trip, and 300 of them one after the other on a 100 ms link
        would outlast a container's stop grace (10 s by default)."""
        with self._lock:
            kept, self._kept = self._kept, {}
        side_by_side(parallel, lambda k: _close(k.session, k.release), kept.values(), "logout")


def _close(session: ImapSource, release: Release) -> None:
    try:
        session.close()
    finally:
        release()
