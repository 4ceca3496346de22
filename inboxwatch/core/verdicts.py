"""A running service's verdicts, redone only for the threads a poll rebuilt
(core.incremental keeps the threads): `now` alone moves only the overdue/waiting line.
tests/unit/test_incremental.py compares them with a full `evaluate` over random changes."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from inboxwatch.core.model import Finding, Stats, Thread, by_due, by_wait
from inboxwatch.core.rules import Owner, Policy
from inboxwatch.core.standards import Window
from inboxwatch.core.unanswered import Outcome, Share, stamped, thread_share


def _shared(stats: Stats, seen: dict[tuple[object, ...], Stats]) -> Stats:
    """One Stats object per distinct value: most threads' shares are alike (one thread,
    one list message excluded, ...), and the memo holds one per thread."""
    key = (
        stats.threads,
        stats.answered,
        tuple(sorted(stats.excluded.items())),
        stats.reply.conversations,
        stats.reply.answered,
        stats.reply.judged,
        stats.reply.within_window,
        tuple(stats.reply.delays),
    )
    return seen.setdefault(key, stats)


class EvalMemo:
    """Running totals over the judged threads; only threads new since the last poll are
    judged, and `now` only moves the overdue/waiting line and the unanswered count.

    Findings are kept in the order they turn overdue (`by_due`): with rules and business
    hours that is not the order of their waits, and the line is still one bisection."""

    def __init__(self) -> None:
        self._context: object = None
        self._reset()

    def _reset(self) -> None:
        self._judged: dict[int, tuple[Thread, Share]] = {}  # the thread keeps its id unique
        self._totals = Stats()
        self._pending: list[tuple[datetime, datetime, str, str]] = []  # by_due; findings beside
        self._findings: list[Finding] = []
        self._open: list[datetime] = []  # sorted: when each open conversation is judged
        self._stats: dict[tuple[object, ...], Stats] = {}

    def evaluate(
        self,
        account: str,
        threads: Sequence[Thread],
        owner: Owner,
        policy: Policy,
        now: datetime,
        window: Window,
    ) -> Outcome:
        context = (account, owner, policy, window)
        if context != self._context:
            self._reset()
            self._context = context
        # The memo holds every thread it judged, so an id it knows is that very thread.
        wanted = set(map(id, threads))
        stale = self._judged.keys() - wanted
        if len(stale) > len(wanted) // 2:  # mostly new: judge all, sort once
            self._reset()
            stale = set()
        for key in stale:
            self._drop(key)
        fresh = [t for t in threads if id(t) not in self._judged]
        bulk = len(fresh) > len(wanted) // 2
        for thread in fresh:
            share = thread_share(account, thread, owner, policy, window)
            share.stats = _shared(share.stats, self._stats)
            self._take(id(thread), thread, share, bulk)
        if bulk:
            order = sorted(range(len(self._pending)), key=self._pending.__getitem__)
            self._pending = [self._pending[n] for n in order]
            self._findings = [self._findings[n] for n in order]
            self._open.sort()
        return self._outcome(now, policy)

    def _take(self, key: int, thread: Thread, share: Share, bulk: bool = False) -> None:
        """Add a judged thread; `bulk` appends, and the caller sorts once at the end."""
        self._judged[key] = (thread, share)
        self._totals.add(share.stats)
        if share.conversation is not None:
            self._totals.reply.each.append(share.conversation)
        if share.delay is not None:
            self._totals.reply.delays.append(share.delay)
        if share.finding is not None:
            f = share.finding
            entry = by_due(f)
            at = len(self._pending) if bulk else bisect.bisect_left(self._pending, entry)
            self._pending.insert(at, entry)
            self._findings.insert(at, f)
        if share.open_until is not None:
            until = share.open_until
            self._open.append(until) if bulk else bisect.insort(self._open, until)

    def _drop(self, key: int) -> None:
        _, share = self._judged.pop(key)
        self._totals.add(share.stats, -1)
        if share.conversation is not None:
            self._totals.reply.each.remove(share.conversation)
        if share.delay is not None:
            self._totals.reply.delays.remove(share.delay)
        if share.finding is not None:
            f = share.finding
            at = bisect.bisect_left(self._pending, by_due(f))
            del self._pending[at], self._findings[at]
        if share.open_until is not None:
            del self._open[bisect.bisect_left(self._open, share.open_until)]

    def _outcome(self, now: datetime, policy: Policy) -> Outcome:
        # Overdue: due strictly before now. Each side is put back in wait order, which
        # without rules or business hours it already is (then sorting costs one pass).
        split = bisect.bisect_left(self._pending, (now,))
        overdue = sorted(self._findings[:split], key=by_wait)
        waiting = sorted(self._findings[split:], key=by_wait)
        if policy.clock is not None or policy.escalate_after:
            overdue = [stamped(f, policy, now) for f in overdue]
            waiting = [stamped(f, policy, now) for f in waiting]
        stats = replace(
            self._totals,
            excluded=dict(self._totals.excluded),
            reply=self._totals.reply.copy(),
            overdue=len(overdue),
            pending=len(waiting),
        )
        stats.reply.judged += bisect.bisect_left(self._open, now)
        return Outcome(overdue, waiting, stats)
