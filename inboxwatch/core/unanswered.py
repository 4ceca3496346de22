"""Threads + owner + now -> overdue findings and stats. Pure: `now` is a parameter.

Contract, "Pending and overdue": pending messages expect a reply and are dated
after the owner's latest message and after the latest `\\Answered` message in
the thread; a thread is overdue when its oldest pending message is older than
the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import NamedTuple

from inboxwatch.core.model import (
    Address,
    Conversation,
    Finding,
    MessageMeta,
    Reason,
    ReplyStandard,
    Stats,
    Thread,
    by_wait,
)
from inboxwatch.core.rules import Owner, Policy, exclusion
from inboxwatch.core.standards import Rule, Window

_NONE: Mapping[str, str] = MappingProxyType({})


class Verdict(NamedTuple):
    """How one thread stands; `pending` is empty when nothing waits."""

    thread: Thread
    pending: tuple[MessageMeta, ...]
    cutoff: datetime | None  # the owner's latest reply, or latest \Answered message
    expecting: tuple[MessageMeta, ...]  # inbound messages that expect a reply


def _unique(messages: Iterable[MessageMeta]) -> list[MessageMeta]:
    """One copy per Message-ID (Gmail labels and Bcc-to-self put a message in two folders)."""
    seen: set[str] = set()
    out = []
    for msg in messages:
        key = msg.message_id or f"{msg.folder}/{msg.uid}"
        if key not in seen:
            seen.add(key)
            out.append(msg)
    return out


def judge_thread(thread: Thread, owner: Owner, policy: Policy, stats: Stats) -> Verdict:
    """Find the pending messages of one thread; counts exclusions into `stats`."""
    messages = thread.messages if len(thread.messages) == 1 else _unique(thread.messages)
    cutoff: datetime | None = None
    expecting: list[MessageMeta] = []
    for msg in messages:
        if "\\Draft" in msg.flags:
            # RFC 3501 \Draft: never sent, so neither a reply nor mail waiting for one (a
            # draft of your answer sits in Gmail's All Mail until you send it).
            continue
        mine = policy.answers(msg, owner)
        if (mine or policy.closes(msg.flags)) and (cutoff is None or msg.received > cutoff):
            cutoff = msg.received
        if mine:
            continue
        excluded = exclusion(msg, owner, policy)
        if excluded is None:
            expecting.append(msg)
        else:
            stats.excluded[excluded.category] = stats.excluded.get(excluded.category, 0) + 1
    pending = tuple(m for m in expecting if cutoff is None or m.received > cutoff)
    return Verdict(thread, pending, cutoff, tuple(expecting))


def human_duration(delta: timedelta) -> str:
    """`2 days 3 hours`, `5 hours 10 minutes`, `12 minutes`."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [(days, "day"), (hours, "hour")] if days else [(hours, "hour"), (mins, "minute")]
    words = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in parts if n]
    return " ".join(words) or "0 minutes"


def reason_line(first: MessageMeta, verdict: Verdict, owner: Owner, policy: Policy) -> str:
    """The one-line why of a finding (the report's `reason`)."""
    who = first.sender.name or first.sender.address if first.sender else "an unknown sender"
    later = len(verdict.pending) - 1
    text = f"{who} wrote"
    if later:
        text += f" (and {later} more message{'s' if later > 1 else ''} since)"
    if verdict.cutoff is None:
        return text + "; no reply from you in this thread"
    gap = human_duration(first.received - verdict.cutoff)
    before = _BEFORE.get(cutoff_reason(verdict, owner, policy).kind, _BEFORE["marked"])
    return text + f"; {before} was {gap} earlier"


# What `cutoff_reason` found, as the one-line reason says it.
_BEFORE = {
    "last_reply": "your last reply",
    "team_reply": "your team's last reply",
    "marked": "the last message marked answered or handled",
}


def cutoff_reason(verdict: Verdict, owner: Owner, policy: Policy) -> Reason:
    """What ended the last wait before this one: a reply of the owner's, or a mark."""
    if verdict.cutoff is None:
        return Reason("no_reply", detail="no message of yours in this thread")
    at_cutoff = [m for m in verdict.thread.messages if m.received == verdict.cutoff]
    mine = [m for m in at_cutoff if owner.wrote(m)]
    if mine:
        return Reason("last_reply", mine[0].ident, verdict.cutoff, "your reply")
    team = [m for m in at_cutoff if policy.team_reply(m, owner)]
    if team and team[0].sender is not None:
        who = team[0].sender.display()
        return Reason("team_reply", team[0].ident, verdict.cutoff, f"your teammate {who}")
    marked = next((m for m in at_cutoff if policy.closes(m.flags)), at_cutoff[0])
    what = "\\Answered" if "\\Answered" in marked.flags else policy.handled_keyword
    return Reason("marked", marked.ident, verdict.cutoff, f"marked {what}")


def reasons_of(
    verdict: Verdict,
    owner: Owner,
    policy: Policy,
    window: Window,
    why_not: Mapping[str, str] = _NONE,
) -> tuple[Reason, ...]:
    """The structured why: the window, each pending message, what came before them, and
    each later message that did not count (and the rule that left it out)."""
    found = [Reason("window", detail=window.text())]
    found += [
        Reason("pending", m.ident, m.received, m.sender.display() if m.sender else "")
        for m in verdict.pending
    ]
    found.append(cutoff_reason(verdict, owner, policy))
    pending = {m.ident for m in verdict.pending}  # copies in other folders included
    for msg in verdict.thread.messages:
        before = msg.received <= verdict.cutoff if verdict.cutoff else False
        if before or msg.ident in pending or owner.wrote(msg):
            continue
        if "\\Draft" in msg.flags:
            why = "a draft (\\Draft), never sent"
        else:
            left_out = exclusion(msg, owner, policy)
            why = left_out.reason if left_out else why_not.get(msg.ident, "expects no reply")
        found.append(Reason("not_counted", msg.ident, msg.received, why))
    return tuple(found)


def standard_of(
    msg: MessageMeta, owner: Owner, policy: Policy, window: Window
) -> tuple[Window, Rule | None]:
    """The window that applies to a message: its first matching rule's, or the account's."""
    rule = policy.rule_for(msg, owner)
    return (rule.window if rule is not None and rule.window else window), rule


def priority_of(msg: MessageMeta, rule: Rule | None, policy: Policy) -> str:
    """The rule's priority; else `high` for someone you wrote to first (vip_from_sent)."""
    if rule is not None and rule.priority:
        return rule.priority
    sender = msg.sender.address.lower() if msg.sender else ""
    return "high" if sender in policy.vips else "normal"


def finding(
    account: str,
    verdict: Verdict,
    owner: Owner,
    policy: Policy,
    window: Window,
    why_not: Mapping[str, str] = _NONE,
) -> Finding:
    first = verdict.pending[0]
    sender = first.sender or Address("", "(unknown sender)")
    in_folder = [m for m in verdict.pending if m.folder == first.folder]
    window, rule = standard_of(first, owner, policy, window)
    label = "" if rule is None else rule.label
    reasons = reasons_of(verdict, owner, policy, window, why_not)
    if label:
        reasons = (reasons[0]._replace(detail=f"{reasons[0].detail} ({label})"), *reasons[1:])
    return Finding(
        account=account,
        thread_id=verdict.thread.thread_id,
        subject=first.subject,
        correspondent=sender,
        waiting_since=first.received,
        message_ids=tuple(m.ident for m in verdict.pending),
        folder=first.folder,
        uids=tuple(m.uid for m in in_folder),
        messages_in_thread=len(verdict.thread.messages),
        last_reply=verdict.cutoff,
        reason=reason_line(first, verdict, owner, policy),
        reasons=reasons,
        due=window.due(first.received, policy.clock),
        priority=priority_of(first, rule, policy),
        rule=label,
        remind="" if rule is None else rule.remind,
    )


def reply_parts(
    verdict: Verdict, owner: Owner, policy: Policy, window: Window, part: ReplyStandard
) -> datetime | None:
    """Add to `part` the thread's share of the reply standard that does not depend on
    `now`; return when its first expecting message's window ends, if it is still
    unanswered (it counts as judged once that time has passed)."""
    if not verdict.expecting:
        return None
    first = verdict.expecting[0]
    window, rule = standard_of(first, owner, policy, window)
    replies = [
        m.received
        for m in verdict.thread.messages
        if m.received > first.received and policy.answers(m, owner)
    ]
    replied = min(replies) if replies else None
    flagged = verdict.cutoff is not None and verdict.cutoff >= first.received
    return part.take(
        Conversation(
            first.received,
            window.due(first.received, policy.clock),
            replied,
            bool(replied or flagged),
            "" if rule is None else rule.label,
            priority_of(first, rule, policy),
        )
    )


@dataclass(slots=True)
class Share:
    """One thread's part of the outcome, all of it that does not depend on `now`."""

    stats: Stats  # threads, answered, excluded, and the reply standard but for `open_until`
    open_until: datetime | None  # unanswered: counts as judged once this time has passed
    finding: Finding | None  # when something waits; overdue or not is decided by `now`
    # Its conversation and its reply's delay, kept apart from `stats` so that alike shares
    # share one Stats: with the delay in it, 20,600 of 37,000 threads had their own
    # (~10 MB of a 100,000-message service's memory).
    conversation: Conversation | None = None
    delay: float | None = None


def tally(
    account: str, thread: Thread, owner: Owner, policy: Policy, window: Window, stats: Stats
) -> tuple[datetime | None, Finding | None]:
    """Add one thread's part of the outcome to `stats`; return what depends on `now`:
    the open conversation's window end (see `reply_parts`) and the finding, if any waits."""
    stats.threads += 1
    verdict = judge_thread(thread, owner, policy, stats)
    open_until = reply_parts(verdict, owner, policy, window, stats.reply)
    if not verdict.pending:
        stats.answered += bool(verdict.expecting)
        return open_until, None
    return open_until, finding(account, verdict, owner, policy, window)


def thread_share(
    account: str, thread: Thread, owner: Owner, policy: Policy, window: Window
) -> Share:
    stats = Stats()
    share = Share(stats, *tally(account, thread, owner, policy, window, stats))
    if stats.reply.each:  # one at most: a thread is one conversation
        share.conversation = stats.reply.each.pop()
        if stats.reply.delays:  # its reply's, if it had one
            share.delay = stats.reply.delays.pop()
    return share


def stamped(found: Finding, policy: Policy, now: datetime) -> Finding:
    """The finding with what depends on `now` beyond overdue or not: its wait in business
    time (when the account keeps business hours) and whether it is escalated."""
    if policy.clock is None and not policy.escalate_after:
        return found
    business = policy.clock.between(found.waiting_since, now) if policy.clock else None
    late = now - (found.due or found.waiting_since)
    escalated = bool(policy.escalate_after) and late > policy.escalate_after
    return found._replace(business_waiting=business, escalated=escalated)


@dataclass
class Outcome:
    overdue: list[Finding]
    waiting: list[Finding]  # pending but still inside the window
    stats: Stats
    invitations: list[Finding] = field(default_factory=list)  # core/refine.py


def evaluate(
    account: str,
    threads: Iterable[Thread],
    owner: Owner,
    policy: Policy,
    now: datetime,
    window: Window,
) -> Outcome:
    """Overdue and waiting findings (longest wait first) and the account's stats."""
    out = Outcome([], [], Stats())
    stats = out.stats
    for thread in threads:  # into one Stats: a Share each (as a service keeps) costs ~10%
        open_until, found = tally(account, thread, owner, policy, window, stats)
        if open_until is not None and now > open_until:
            stats.reply.judged += 1
        if found is None:
            continue
        found = stamped(found, policy, now)
        if found.overdue_at(now):
            stats.overdue += 1
            out.overdue.append(found)
        else:
            stats.pending += 1
            out.waiting.append(found)
    for items in (out.overdue, out.waiting):
        items.sort(key=by_wait)
    return out
