"""The poll's quick check: did any folder the last poll read change? One EXAMINE each,
all sent in one write.

When nothing changed the service carries its last report forward in time instead of
reading (core.carried.advance). The accounts are checked side by side (`max_parallel`)
on the sessions the service keeps (service.sessions), so a poll with nothing new costs
one round trip (an EXAMINE a folder, pipelined) and no login; the sessions stay open
for the poll that follows when something changed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from inboxwatch.core.fanout import side_by_side
from inboxwatch.core.ports import StateStore
from inboxwatch.imap.source import ImapSource
from inboxwatch.service.sessions import Sessions


@dataclass
class QuickCheck:
    store: StateStore
    sessions: Sessions
    parallel: int

    def unchanged(self, folders: Mapping[str, tuple[str, ...]]) -> bool:
        """Every folder in `folders` (by account) reports the same UIDVALIDITY, UIDNEXT,
        message count and HIGHESTMODSEQ; no header or flag is fetched. Stops at the first
        change (accounts not yet started are not checked)."""
        changed = threading.Event()

        def check(name: str) -> None:
            if changed.is_set():
                return

            def same(source: ImapSource) -> bool:
                names = folders[name]
                known = [self.store.folder(name, f) for f in names]
                states = source.examine_each(names, known)  # in one round trip
                return all(
                    state.unchanged_since(last) for last, state in zip(known, states, strict=True)
                )

            if not self.sessions.retried(name, same):
                changed.set()

        side_by_side(self.parallel, check, folders, "check")
        return not changed.is_set()
