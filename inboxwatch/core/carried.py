"""A report carried forward in time: when no mail changed, a poll need not read or judge
again (service.poller), and a replica's stored report of an account is brought up to
the digest's time (service.replicas)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from inboxwatch.core.model import Finding, Report, by_wait
from inboxwatch.core.scan import AccountPlan
from inboxwatch.core.unanswered import stamped


def _crossed(
    late: list[Finding], soon: list[Finding], crossed: Callable[[Finding], bool]
) -> tuple[list[Finding], list[Finding]]:
    """`soon`'s entries that have `crossed` their limit join `late` (in order)."""
    still: list[Finding] = []
    for item in soon:  # only these can change: crossing their limit
        (late if crossed(item) else still).append(item)
    late.sort(key=by_wait)
    return late, still


def advance(previous: Report, plans: Sequence[AccountPlan], now: datetime) -> Report:
    """The previous poll's report at a later `now`, when no mail changed: waits grow, and
    threads that crossed their window move from waiting to overdue (your own unanswered
    messages past followup_after likewise). The reply standard stays as of the last
    read; it is only shown in a digest, and a poll with a digest due always reads
    (Poller._carry)."""
    by_name = {plan.name: plan for plan in plans}
    overdue, waiting = _crossed(
        [f for f in previous.overdue if f.waiting_since >= now - by_name[f.account].lookback],
        previous.waiting,  # still overdue above, unless aged out of the lookback
        lambda f: f.overdue_at(now),
    )
    overdue = [stamped(f, by_name[f.account].policy, now) for f in overdue]
    waiting = [stamped(f, by_name[f.account].policy, now) for f in waiting]
    awaited, soon = _crossed(
        list(previous.awaiting),
        previous.awaiting_soon,
        lambda f: now - f.waiting_since > by_name[f.account].followup_after,
    )
    stats = replace(previous.stats, overdue=len(overdue), pending=len(waiting))
    return replace(
        previous,
        generated_at=now,
        as_of=now,
        overdue=overdue,
        waiting=waiting,
        stats=stats,
        awaiting=awaited,
        awaiting_soon=soon,
    )
