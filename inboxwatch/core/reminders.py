"""Reminders that escalate (issue 19, item 4): how many digests listed a thread, whether it
is listed again (`remind`), and the order a digest lists threads in. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from inboxwatch.core.model import Finding, Report, by_wait
from inboxwatch.core.standards import PRIORITIES


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
