"""Snoozed and muted threads: the user's "not now" and "never for this one", kept in our
state (the mailbox is never touched). Pure: `now` is a parameter.

A note holds the thread's pending messages as they were when it was made. It hides the
thread while those are all that wait: a new inbound message brings the thread back, as
does the end of a snooze (issue 18, item 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from inboxwatch.core.model import Finding, Report, as_message_id


@dataclass(frozen=True)
class Snooze:
    message_id: str  # as the user named it: one of the thread's message ids, or its id
    account: str
    thread_id: str
    subject: str
    pending: tuple[str, ...]  # the thread's pending messages when it was snoozed
    until: datetime | None  # None: muted, for good
    created: datetime

    @property
    def muted(self) -> bool:
        return self.until is None

    def holds(self, finding: Finding, now: datetime) -> bool:
        """Hides `finding`: the same thread, nothing new waiting, and not yet over."""
        if finding.account != self.account:
            return False
        same = finding.thread_id == self.thread_id or self.message_id in finding.message_ids
        nothing_new = set(finding.message_ids) <= set(self.pending)
        return same and nothing_new and (self.until is None or now < self.until)


def find(report: Report, message_id: str) -> Finding | None:
    """The waiting thread that holds `message_id` (a pending message's, or the thread's)."""
    wanted = as_message_id(message_id)
    for finding in (*report.overdue, *report.waiting):
        if wanted == finding.thread_id or wanted in finding.message_ids:
            return finding
    return None


def snooze_of(finding: Finding, message_id: str, until: datetime | None, now: datetime) -> Snooze:
    return Snooze(
        message_id, finding.account, finding.thread_id, finding.subject,
        finding.message_ids, until, now,
    )  # fmt: skip


def hold(report: Report, notes: Sequence[Snooze], now: datetime) -> Report:
    """The report without the threads a note hides, which move to `report.snoozed` and
    `report.muted` (counted in the JSON and the digest)."""
    if not notes:
        return report
    kept: dict[str, list[Finding]] = {"overdue": [], "waiting": []}
    held: dict[bool, list[Finding]] = {True: [], False: []}  # muted?
    for key, findings in (("overdue", report.overdue), ("waiting", report.waiting)):
        for finding in findings:
            note = next((n for n in notes if n.holds(finding, now)), None)
            (kept[key] if note is None else held[note.muted]).append(finding)
    stats = replace(report.stats, overdue=len(kept["overdue"]), pending=len(kept["waiting"]))
    return replace(
        report,
        overdue=kept["overdue"],
        waiting=kept["waiting"],
        stats=stats,
        snoozed=held[False],
        muted=held[True],
    )
