"""What a pending message's body changes (issue 18, items 1 and 2). Headers judge every
message; only the few left pending get a little of their body read (core/bodytext.py):

- a closing message ("Thanks, that fixed it!") after your reply or mark asks nothing;
- a calendar invitation (iTIP METHOD:REQUEST, RFC 5546) is answered by accepting or
  declining: it goes to `invitations`, not `overdue`;
- responses and cancellations (REPLY, CANCEL, COUNTER…) expect nothing at all.
Pure: the bodies come through `read`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from inboxwatch.core.bodytext import Details
from inboxwatch.core.closing import closing
from inboxwatch.core.model import Finding, MessageMeta, Stats, Thread, by_wait
from inboxwatch.core.rules import Owner, Policy
from inboxwatch.core.standards import Window
from inboxwatch.core.unanswered import Outcome, Verdict, finding, judge_thread, stamped

INVITATIONS = frozenset({"REQUEST", "ADD"})
# Sent to tell, not to ask: an answer to your invitation, a cancellation, a published
# calendar (RFC 5546 3.2).
ANSWERS = frozenset({"REPLY", "CANCEL", "COUNTER", "DECLINECOUNTER", "REFRESH", "PUBLISH"})
Read = Callable[[Sequence[MessageMeta]], dict[tuple[str, int], Details]]


def what(msg: MessageMeta, details: Details | None, verdict: Verdict, policy: Policy) -> str:
    """`invitation`, `calendar`, `closing message: <text>`, or "" (still expects a reply)."""
    if details is None:
        return ""
    if details.calendar in INVITATIONS:
        return "invitation"
    if details.calendar in ANSWERS:
        return f"calendar {details.calendar.lower()} (iTIP)"
    answered_before = verdict.cutoff is not None
    if policy.closing_messages and answered_before and details.text and not details.attachment:
        judged = closing(details.text)
        if judged is not None:
            return f"closing message: {judged[:120]}"
    return ""


class BodySaid(NamedTuple):
    """A verdict's pending messages as their bodies sort them."""

    kinds: dict[str, str]  # by message id: what its body said (`what`), "" for nothing
    left: tuple[MessageMeta, ...]  # still expecting a reply
    invites: tuple[MessageMeta, ...]


def said(verdict: Verdict, details: Mapping[tuple[str, int], Details], policy: Policy) -> BodySaid:
    kinds = {
        m.ident: what(m, details.get((m.folder, m.uid)), verdict, policy) for m in verdict.pending
    }
    left = tuple(m for m in verdict.pending if not kinds[m.ident])
    invites = tuple(m for m in verdict.pending if kinds[m.ident] == "invitation")
    return BodySaid(kinds, left, invites)


@dataclass
class _Refined:
    """The findings as the bodies leave them."""

    overdue: list[Finding] = field(default_factory=list)
    waiting: list[Finding] = field(default_factory=list)
    invitations: list[Finding] = field(default_factory=list)


class Settled(NamedTuple):
    """A flagged thread as its pending messages' bodies leave it, whatever the time."""

    thread: Thread
    # Its verdict, what the bodies said and the first invitation's details, if any;
    # None when the bodies change nothing (most threads: nothing more is kept of them).
    change: tuple[Verdict, BodySaid, Details | None] | None


class RefineMemo:
    """Each flagged thread's `Settled`, by thread: a running service's poll judges again,
    and reads the bodies of, only the flagged threads its changes rebuilt (core.incremental
    hands back the others as the very same objects). A thread whose bodies could not all
    be read is not kept: the next poll reads them again, as a scan would."""

    def __init__(self) -> None:
        self._context: object = None
        self._known: dict[str, Settled] = {}  # by thread id; its thread is checked

    def unsettled(
        self, findings: Sequence[Finding], threads: Sequence[Thread], owner: Owner, policy: Policy
    ) -> list[Finding]:
        """The findings whose bodies `settle` will read (the others are known)."""
        _, new = self._split(findings, threads, (owner, policy))
        fresh = {t.thread_id for t in new}
        return [f for f in findings if f.thread_id in fresh]

    def settle(
        self,
        findings: Sequence[Finding],
        threads: Sequence[Thread],
        owner: Owner,
        policy: Policy,
        read: Read,
    ) -> dict[str, Settled]:
        """Each finding's thread settled, by thread id: the known ones as they were, the
        others judged and their pending bodies read."""
        settled, new = self._split(findings, threads, (owner, policy))
        verdicts = [judge_thread(t, owner, policy, Stats()) for t in new]
        details = read([m for v in verdicts for m in v.pending]) if verdicts else {}
        kept = dict(settled)
        for verdict in verdicts:
            entry = _settled(verdict, details, policy)
            settled[verdict.thread.thread_id] = entry
            if all((m.folder, m.uid) in details for m in verdict.pending):
                kept[verdict.thread.thread_id] = entry
        self._known, self._context = kept, (owner, policy)  # a thread no longer flagged goes
        return settled

    def _split(
        self, findings: Sequence[Finding], threads: Sequence[Thread], context: object
    ) -> tuple[dict[str, Settled], list[Thread]]:
        known = self._known if context == self._context else {}
        wanted = {f.thread_id for f in findings}
        settled: dict[str, Settled] = {}
        new: list[Thread] = []
        for thread in threads:
            if thread.thread_id not in wanted:
                continue
            entry = known.get(thread.thread_id)
            if entry is not None and entry.thread is thread:
                settled[thread.thread_id] = entry
            else:
                new.append(thread)
        return settled, new


def _settled(
    verdict: Verdict, details: Mapping[tuple[str, int], Details], policy: Policy
) -> Settled:
    body = said(verdict, details, policy)
    if not any(body.kinds.values()):
        return Settled(verdict.thread, None)
    first = body.invites[0] if body.invites else None
    invite = None if first is None else details[(first.folder, first.uid)]
    return Settled(verdict.thread, (verdict, body, invite))


def refine(
    account: str,
    outcome: Outcome,
    threads: Sequence[Thread],
    judge: tuple[Owner, Policy, datetime, Window],
    read: Read,
    memo: RefineMemo | None = None,
) -> None:
    """Re-judge the outcome's findings with their pending messages' bodies, in place;
    `memo`: read only what it does not know."""
    findings = [*outcome.overdue, *outcome.waiting]
    owner, policy = judge[0], judge[1]
    settled = (memo or RefineMemo()).settle(findings, threads, owner, policy, read)
    if not findings:
        return
    late = {f.thread_id for f in outcome.overdue}
    out = _Refined(invitations=outcome.invitations)
    for found in findings:
        entry = settled.get(found.thread_id)
        if entry is not None:
            _one(account, found, entry, judge, outcome.stats, out, found.thread_id in late)
    for items in (out.overdue, out.waiting, out.invitations):
        items.sort(key=by_wait)
    outcome.overdue, outcome.waiting = out.overdue, out.waiting
    outcome.stats.overdue, outcome.stats.pending = len(out.overdue), len(out.waiting)


def _one(
    account: str,
    found: Finding,
    entry: Settled,
    judge: tuple[Owner, Policy, datetime, Window],
    stats: Stats,
    out: _Refined,
    late: bool,
) -> None:
    """One finding: kept as it was, rebuilt without what needs no reply, moved to the
    invitations, or answered (the last word was theirs and closed it)."""
    owner, policy, as_of, window = judge
    if entry.change is None:
        (out.overdue if late else out.waiting).append(found)
        return
    verdict, (kinds, left, invites), invite = entry.change
    for kind in kinds.values():
        if kind and kind != "invitation":  # invitations are listed, not left out
            key = kind.split(" ", 1)[0]  # closing, calendar
            stats.excluded[key] = stats.excluded.get(key, 0) + 1
    if left:
        why_not = {ident: kind for ident, kind in kinds.items() if kind}
        again = finding(account, verdict._replace(pending=left), owner, policy, window, why_not)
        again = stamped(again, policy, as_of)
        (out.overdue if again.overdue_at(as_of) else out.waiting).append(again)
        return
    if invites and invite is not None:
        event = (invite.title, invite.start)
        listed = finding(account, verdict._replace(pending=invites), owner, policy, window)
        out.invitations.append(listed._replace(event=event))
    else:
        stats.answered += 1
