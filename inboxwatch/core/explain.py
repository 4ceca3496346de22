"""`inboxwatch explain`: a thread, each message with its role, and the verdict — also for
a thread that was not reported, naming the rule that left it out (issue 18, item 4).
Pure: `as_of` is a parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from inboxwatch.core.model import MessageMeta, Stats, Thread, as_message_id
from inboxwatch.core.refine import Read, said
from inboxwatch.core.rules import Owner, Policy, exclusion
from inboxwatch.core.standards import Window
from inboxwatch.core.subjects import base_subject
from inboxwatch.core.unanswered import (
    Verdict,
    human_duration,
    judge_thread,
    reason_line,
    standard_of,
)


@dataclass(frozen=True)
class Row:
    message: MessageMeta
    role: str


@dataclass(frozen=True)
class Explanation:
    thread: Thread
    rows: tuple[Row, ...]
    verdict: str


def matches(thread: Thread, message_id: str, subject: str) -> bool:
    """The thread holds `message_id` (with or without <>), or a subject containing
    `subject` (case-insensitive, Re:/Fwd: ignored)."""
    if message_id:
        wanted = as_message_id(message_id)
        return thread.thread_id == wanted or any(m.ident == wanted for m in thread.messages)
    needle = base_subject(subject)
    return any(needle in base_subject(m.subject) for m in thread.messages)


def _sender_role(msg: MessageMeta, owner: Owner, policy: Policy) -> str:
    """A role its sender alone gives it, or ""."""
    if "\\Draft" in msg.flags:
        return "a draft (\\Draft): never sent, not a reply"
    if owner.wrote(msg):
        return "yours: a reply"
    if policy.team_reply(msg, owner):
        return "your teammate's reply (team)"
    left_out = exclusion(msg, owner, policy)
    return f"left out: {left_out.reason}" if left_out is not None else ""


def role(msg: MessageMeta, verdict: Verdict, owner: Owner, policy: Policy, body: str = "") -> str:
    fixed = _sender_role(msg, owner, policy)
    if fixed:
        return fixed
    marked = " (marked answered or handled)" if policy.closes(msg.flags) else ""
    if body:  # what its body said: a closing message, an invitation, a calendar answer
        return f"{body}: needs no e-mail reply" + marked
    if any(m.ident == msg.ident for m in verdict.pending):  # a copy in another folder too
        return "expects a reply: waiting" + marked
    return "expects a reply: answered after it" + marked


def _verdict(
    verdict: Verdict, owner: Owner, policy: Policy, as_of: datetime, window: Window
) -> str:
    if verdict.pending and not verdict.expecting:
        return "not reported: an invitation to answer in your calendar"
    if verdict.pending:
        first = verdict.pending[0]
        why = reason_line(first, verdict, owner, policy)
        window, rule = standard_of(first, owner, policy, window)
        due = window.due(first.received, policy.clock)
        limit = window.text() + (f", {rule.label}" if rule is not None else "")
        if as_of > due:
            waited = human_duration(as_of - first.received)
            return f"overdue: {why}; waiting {waited} (window {limit})"
        return f"waiting inside the window (due in {human_duration(due - as_of)}, {limit}): {why}"
    if verdict.expecting:
        return "answered: nothing waits after your last reply or mark"
    return "not reported: no message in it expects a reply (each is yours or left out)"


def explain(
    threads: list[Thread],
    owner: Owner,
    policy: Policy,
    as_of: datetime,
    window: Window,
    wanted: tuple[str, str],
    read: Read,
) -> list[Explanation]:
    """Every thread that matches `wanted` (message id, subject), each message's role and
    the thread's verdict, the pending messages' bodies read as a scan reads them."""
    found = []
    for thread in threads:
        if not matches(thread, *wanted):
            continue
        verdict = judge_thread(thread, owner, policy, Stats())
        kinds, left, invites = said(verdict, read(verdict.pending), policy)
        judged = verdict._replace(
            pending=left or invites,
            expecting=() if not left and invites else verdict.expecting,
        )
        rows = tuple(
            Row(m, role(m, judged, owner, policy, kinds.get(m.ident, ""))) for m in thread.messages
        )
        found.append(Explanation(thread, rows, _verdict(judged, owner, policy, as_of, window)))
    return found
