"""The report a `run --once` kept (store/lastreport.py, store/keptrows.py), as the next run
reads it: its folders, to see whether it applies; its head (the figures); and the overdue
and waiting threads it shows, counted from its rows. A run brought forward from it
(carried, or spliced: service.splicing) shows only its line, so the rows are never read
whole: at 100,000 messages they are 31,000 findings and 30,000 conversations, which took
0.3 s to decode and 0.2 s to write again each run (issue 21, bench/README.md).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from inboxwatch.config import Settings
from inboxwatch.core.carried import advance
from inboxwatch.core.model import Finding, Report
from inboxwatch.core.ports import StateStore
from inboxwatch.core.scan import AccountPlan
from inboxwatch.core.snooze import Snooze, hold
from inboxwatch.core.splice import Part
from inboxwatch.store import lastreport

log = logging.getLogger(__name__)
A = TypeVar("A")
T = TypeVar("T")
Spliced = tuple[str, Part, Part]  # an account's name, its part before and after the change


def readable(read: Callable[[A], T], kept: A) -> T | None:
    """`read` (lastreport's folders or decode) of what was kept of the report; None, and
    a line, when it does not read (the poll reads the cache instead)."""
    try:
        return read(kept)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        log.info("stored report unreadable (%s); reading the cache", exc)
        return None


def keep(store: StateStore, settings: Settings, report: Report) -> None:
    """`report`, read whole, kept for the next run to start from."""
    key, folders = lastreport.fingerprint(settings), lastreport.encode_folders(report)
    rows = lastreport.changes(report)
    store.save_report(key, folders, lastreport.head(report), rows, whole=True)


class KeptReport:
    """A kept report made with these settings: its folders (by account), its head, and
    what its rows show."""

    def __init__(self, store: StateStore, key: str, text: str, folders: dict[str, tuple[str, ...]]):
        self.store, self.key, self.text, self.folders = store, key, text, folders
        self._head: Report | None = None

    @classmethod
    def of(cls, store: StateStore, settings: Settings) -> KeptReport | None:
        """The kept report, if it was made with `settings` and its folders read."""
        key = lastreport.fingerprint(settings)
        text = store.kept_folders(key)
        folders = None if text is None else readable(lastreport.folders, text)
        return None if text is None or folders is None else cls(store, key, text, folders)

    def head(self) -> Report | None:
        """Its figures, without findings or conversations; None when it does not read."""
        if self._head is None:
            body = self.store.kept_report(self.key, self.text)
            self._head = None if body is None else readable(lastreport.decode, body)
        return self._head

    def report(self, plans: Sequence[AccountPlan]) -> Report | None:
        """All of it, as of its time (a replica keeps each account's part of it)."""
        head = self.head()
        store = self.store
        whole = head and readable(
            lambda h: lastreport.filled(h, store.kept_findings(), store.kept_conversations()), head
        )
        return whole and advance(whole, plans, whole.as_of)

    def shown(
        self, report: Report, plans: Sequence[AccountPlan], notes: Sequence[Snooze], now: datetime
    ) -> tuple[Report, dict[str, tuple[int, int]]] | None:
        """`report` (the head brought to `now`) with the overdue and waiting threads its
        rows show, counted as core.carried.advance and core.snooze.hold would leave them,
        and those counts by account; None where a row a note may hold does not read."""
        counts = {p.name: self.store.kept_counts(p.name, now - p.lookback, now) for p in plans}
        mine = [n for n in notes if n.account in counts]
        near = {r for n in mine for r in self.store.kept_findings(_near(n))}
        if near:  # the rows a note may hold, and whether each is shown otherwise
            lists = readable(_lists, near)
            if lists is None:
                return None
            some = advance(report.listing(lists), plans, now)
            held = hold(some, mine, now)
            late = Counter(f.account for f in some.overdue)
            late.subtract(f.account for f in held.overdue)
            due = Counter(f.account for f in some.waiting)
            due.subtract(f.account for f in held.waiting)
            counts = {a: (o - late[a], w - due[a]) for a, (o, w) in counts.items()}
        overdue, waiting = sum(o for o, _ in counts.values()), sum(w for _, w in counts.values())
        stats = replace(report.stats, overdue=overdue, pending=waiting)
        return replace(report, stats=stats), counts

    def splice(self, report: Report, parts: Sequence[Spliced]) -> bool:
        """Kept as `report` (the head brought forward: service.splicing), its rows changed
        by each account's part before and after; False where they no longer matched it
        (then nothing is kept)."""
        rows = [
            lastreport.change(
                name, old.threads, new.lists, old.stats.reply.each, new.stats.reply.each
            )
            for name, old, new in parts
        ]
        return self.store.save_report(self.key, self.text, lastreport.head(report), rows, False)


def _near(note: Snooze) -> tuple[str, str, str]:
    return note.account, note.thread_id, note.message_id


def _lists(rows: set[tuple[int, bytes]]) -> dict[str, list[Finding]]:
    lists: dict[str, list[Finding]] = {"overdue": [], "waiting": []}
    for row in rows:
        key, finding = lastreport.found(row)
        lists[key].append(finding)
    return lists
