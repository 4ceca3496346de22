"""The poll's quick check: did any folder the last poll read change? One EXAMINE each.

When nothing changed the service carries its last report forward in time instead of
reading (service.poller.advance). The accounts are checked side by side (`max_parallel`),
each holding a slot of its server's connection cap (imap.slots) while it is checked.
The session of an account found changed is handed to the poll that follows, its slot
with it, so the poll logs in to it once; the others are closed at once, since a held
idle session would keep a waiting account from its server's slot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from inboxwatch.config import Account
from inboxwatch.core.ports import StateStore
from inboxwatch.imap.opener import open_imap
from inboxwatch.imap.slots import Release, ServerSlots
from inboxwatch.imap.source import ImapSource

T = TypeVar("T")
# How often an account waiting for its server's slot looks whether another account
# changed meanwhile (then the check is over, and the slot's holder needs no waiting for).
_WAIT_STEP = 0.05


def each(parallel: int, work: Callable[[T], object], items: Iterable[T]) -> None:
    """`work` on every item, `parallel` at a time (in this thread when 1)."""
    todo = list(items)
    if parallel <= 1 or len(todo) <= 1:
        for item in todo:
            work(item)
        return
    with ThreadPoolExecutor(min(parallel, len(todo)), "check") as pool:
        list(pool.map(work, todo))  # re-raises the first error


@dataclass
class Handover:
    """Sessions of the accounts found changed, logged in, each with its server slot."""

    sessions: dict[str, ImapSource] = field(default_factory=dict)
    slots: dict[str, Release] = field(default_factory=dict)

    def close(self) -> None:
        """What the poll did not use: closed, and its slot given back."""
        for session in self.sessions.values():
            session.close()
        for release in self.slots.values():
            release()
        self.sessions.clear()
        self.slots.clear()


@dataclass
class QuickCheck:
    accounts: Mapping[str, Account]
    store: StateStore
    tokens: Path
    slots: ServerSlots
    parallel: int

    def unchanged(self, folders: Mapping[str, tuple[str, ...]], handover: Handover) -> bool:
        """Every folder in `folders` (by account) reports the same UIDVALIDITY, UIDNEXT,
        message count and HIGHESTMODSEQ; no header or flag is fetched. Stops at the first
        change (accounts not yet started are not checked)."""
        changed = threading.Event()
        lock = threading.Lock()

        def check(name: str) -> None:
            release = self._slot(self.accounts[name].host, changed)
            if release is None:
                return
            source: ImapSource | None = None
            try:
                source = open_imap(self.accounts[name], self.tokens, self.slots)()
                if all(
                    source.examine(f).unchanged_since(self.store.folder(name, f))
                    for f in folders[name]
                ):
                    return
                changed.set()
                with lock:
                    handover.sessions[name], handover.slots[name] = source, release
                source = release = None
            finally:
                if source is not None:
                    source.close()
                if release is not None:
                    release()

        each(self.parallel, check, folders)
        return not changed.is_set()

    def _slot(self, host: str, changed: threading.Event) -> Release | None:
        """A slot on `host`, or None once another account changed (no check is needed
        then, and the changed one's slot is not given back before the poll)."""
        while not changed.is_set():
            release = self.slots.take(host, timeout=_WAIT_STEP)
            if release is not None:
                return release
        return None
