"""Reminders that escalate (issue 19, item 4): how many digests listed a thread, whether it
is listed again (`remind`), and the order a digest lists threads in. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from inboxwatch.core.model import Finding, Report, by_wait
from inboxwatch.core.snooze import Snooze, hold
from inboxwatch.core.standards import PRIORITIES

# The entries each list of a digest shows, the most urgent first; the rest are counted,
# and `inboxwatch scan` lists them. A person reads the first few dozen, and mail servers
# refuse big messages (Postfix's message_size_limit is 10 MB unless raised, Gmail takes
# 25 MB): listing every thread of a 100,000-message mailbox (9,601 overdue, 21,214
# awaiting an answer) made a 31.5 MB digest (bench/README.md, issue 21).
LISTED = 100  # in a digest of one account; a digest of several shares it out
LISTED_LEAST = 3  # 300 accounts: at most 3,600 entries, ~4-5 MB


def shown_of(
    notes: Sequence[Snooze], seen: Mapping[tuple[str, str], int], now: datetime, report: Report
) -> Report:
    """What `report` shows (a poll's line, its digest): the threads the user's notes hide
    held back (core.snooze), and how many digests listed each overdue one before."""
    return with_seen(hold(report, notes, now), seen)


def with_seen(report: Report, seen: Mapping[tuple[str, str], int]) -> Report:
    """The report with each overdue thread's count of digests that listed it before."""
    if not seen:
        return report
    overdue = [
        f._replace(digests_seen=seen.get((f.account, f.thread_id), 0)) for f in report.overdue
    ]
    return replace(report, overdue=overdue)


def reminds(f: Finding) -> bool:
    """Listed in the next digest: `remind = "once"` stops after the first."""
    return not (f.remind == "once" and f.digests_seen > 0)


def by_urgency(f: Finding) -> tuple[bool, int, datetime, str, str]:
    """A digest's order: escalated first, then by priority, then longest wait first."""
    return not f.escalated, PRIORITIES.index(f.priority), *by_wait(f)


def listed(found: Sequence[Finding], accounts: int) -> tuple[Sequence[Finding], int]:
    """What one list of a digest of `accounts` accounts shows of `found` (in its order),
    and how many entries it leaves out."""
    room = max(LISTED_LEAST, LISTED // max(accounts, 1))
    return found[:room], max(0, len(found) - room)


def by_account(found: Iterable[Finding]) -> dict[str, list[Finding]]:
    """The findings by account, each in the given order: one pass, where a filter per
    account took seconds for a digest of hundreds of accounts."""
    grouped: dict[str, list[Finding]] = {}
    for f in found:
        grouped.setdefault(f.account, []).append(f)
    return grouped


def reminding(report: Report) -> dict[str, list[Finding]]:
    """Each account's overdue threads a digest lists, in its order (before `listed`)."""
    grouped = by_account(f for f in report.overdue if reminds(f))
    return {account: sorted(found, key=by_urgency) for account, found in grouped.items()}
