"""A kept report brought forward by what changed since it was made, reading only the
messages the change could touch: `run --once` after one new message in a 100,000-message
mailbox read and judged all of them again (issue 21).

The messages that can matter are the smallest set that holds the changed ones and is
closed under what threading looks at across messages: the ids they share (Message-ID,
References, In-Reply-To, a provider's thread) and, for a message without linking headers,
its base subject (the fallback joins such a message to a thread of that subject:
core.threads). Threads are built again from that set as it was and as it is; the report
loses the first's part and gains the second's. Outside the set no thread, verdict or
awaited answer can differ: a lone message outside chose no thread inside (every message
of its subject would be inside), and none inside could choose one outside (likewise).
The fallback's `meets` test is not asked: taking a whole subject is as cautious, and
cheap where subjects are few. tests/unit/test_splice.py compares the result with a full
scan over random changes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from inboxwatch.core.awaiting import awaiting
from inboxwatch.core.incremental import Key, linked_ids
from inboxwatch.core.model import AccountSummary, Finding, MessageMeta, Report, Stats, by_wait
from inboxwatch.core.refine import Read, refine
from inboxwatch.core.rules import Owner, Policy
from inboxwatch.core.scan import AccountPlan, counterpart_matcher
from inboxwatch.core.subjects import base_subject
from inboxwatch.core.threads import build_threads
from inboxwatch.core.unanswered import evaluate


class Cached(Protocol):
    """One account's messages as the kept report read them (the state's cache)."""

    def naming(self, names: Collection[str]) -> set[Key]:
        """The messages that have any of `names` among their `names_of` (or more)."""
        ...

    def meta(self, keys: Collection[Key]) -> dict[Key, MessageMeta]:
        """The messages at `keys` that it holds."""
        ...


# A base subject as a name: a NUL never begins a header's id (and a match would only make
# the region larger, which is still right).
_SUBJECT, _LONE = "\0subject ", "\0lone "


def names_of(msg: MessageMeta, bases: Mapping[str, str] | None = None) -> set[str]:
    """What a message is found by: the ids it names (as threading links them), its base
    subject, and that subject again where it has no linking headers (the fallback may
    join it to another thread of that subject). `bases`: base subjects taken before
    (core.subjects.Bases), for many messages."""
    names = set(linked_ids(msg))
    base = base_subject(msg.subject) if bases is None else bases[msg.subject]
    if base:  # a message of no subject joins no thread by it
        names.add(_SUBJECT + base)
        if not msg.linked:
            names.add(_LONE + base)
    return names


@dataclass
class Change:
    """What a read found since the kept report: messages new or changed (as they are now),
    and the places of those gone (expunged, moved away, out of the lookback)."""

    new: dict[Key, MessageMeta] = field(default_factory=dict)
    gone: set[Key] = field(default_factory=set)


@dataclass
class Region:
    """The closed set's messages as the kept report saw them, and as they are now."""

    before: list[MessageMeta]
    after: list[MessageMeta]


def region(change: Change, cached: Cached, limit: int) -> Region | None:
    """The messages the change can touch, before and after it; None when more than
    `limit` (then reading everything costs about as much)."""
    keys: set[Key] = {*change.new, *change.gone}
    old: dict[Key, MessageMeta] = {}
    asked: set[str] = set()
    fresh = set(keys)
    while fresh:
        old.update(cached.meta(fresh))
        seen = [old[k] for k in fresh if k in old]
        seen += [change.new[k] for k in fresh if k in change.new]
        found = _neighbours(seen, cached, asked) - keys
        if len(keys) + len(found) > limit:
            return None
        keys |= found
        fresh = found
    before = [old[k] for k in keys if k in old]
    after = [m for k, m in old.items() if k not in change.new and k not in change.gone]
    after += [change.new[k] for k in keys if k in change.new]
    return Region(before, after)


def _neighbours(messages: Iterable[MessageMeta], cached: Cached, asked: set[str]) -> set[Key]:
    """The cached messages sharing an id with `messages`, all of a lone one's base subject,
    and the lone ones of any of their base subjects (each name asked once)."""
    wanted: set[str] = set()
    for msg in messages:
        wanted.update(linked_ids(msg))
        base = base_subject(msg.subject)
        if base:
            wanted.add(_LONE + base)
            if not msg.linked:
                wanted.add(_SUBJECT + base)
    wanted -= asked
    asked |= wanted
    return cached.naming(wanted) if wanted else set()


@dataclass
class Part:
    """Some threads' part of an account's report, as a scan of them alone makes it."""

    threads: set[str]  # their ids
    stats: Stats
    lists: dict[str, list[Finding]]  # by the report's field: overdue, waiting, ...


def part(
    plan: AccountPlan,
    messages: list[MessageMeta],
    owner: Owner,
    policy: Policy,
    as_of: datetime,
    read: Read,
) -> Part:
    """What a scan (core.scan.scan_account) makes of `messages` alone, for an account
    whose sent folder is usable (contract rule 6)."""
    threads = build_threads(messages, counterpart_matcher(owner))
    outcome = evaluate(plan.name, threads, owner, policy, as_of, plan.reply_window)
    late, soon = awaiting(plan.name, threads, owner, policy, as_of, plan.followup_after)
    refine(plan.name, outcome, threads, (owner, policy, as_of, plan.reply_window), read)
    lists = {
        "overdue": outcome.overdue,
        "waiting": outcome.waiting,
        "invitations": outcome.invitations,
        "awaiting": late,
        "awaiting_soon": soon,
    }
    return Part({t.thread_id for t in threads}, outcome.stats, lists)


def spliced(report: Report, name: str, before: Part, after: Part, count: int) -> Report:
    """`report` (brought to `now` by core.carried.advance) with account `name`'s part
    `before` taken out and `after` put in; `count`: its messages now. The reply standard's
    `judged` stays as of each part's read (a carried report's does too: a digest reads)."""
    moved = figures(report, name, before, after, count)
    lists: dict[str, list[Finding]] = {}
    for key, theirs in after.lists.items():
        kept = [
            f
            for f in getattr(report, key)
            if f.account != name or f.thread_id not in before.threads
        ]
        lists[key] = sorted([*kept, *theirs], key=by_wait)
    moved.stats.overdue, moved.stats.pending = len(lists["overdue"]), len(lists["waiting"])
    return moved.listing(lists)


def figures(report: Report, name: str, before: Part, after: Part, count: int) -> Report:
    """`spliced` but for the findings, which stay as they were: the accounts' and the
    report's figures (a kept report's findings are rows: store/keptrows.py)."""
    stats = _moved(report.stats, before.stats, after.stats)
    accounts = [a if a.name != name else _summary(a, before, after, count) for a in report.accounts]
    return replace(report, accounts=accounts, stats=stats)


def bare(part: Part) -> Part:
    """`part` without its conversations, for a report whose conversations are rows: only
    its reply standard's figures and delays are moved (`figures`)."""
    reply = replace(part.stats.reply, each=[])
    return replace(part, stats=replace(part.stats, reply=reply))


def _moved(stats: Stats, before: Stats, after: Stats) -> Stats:
    moved = replace(stats, excluded=dict(stats.excluded), reply=stats.reply.copy())
    moved.add(before, -1)
    moved.add(after)
    return moved


def _summary(summary: AccountSummary, before: Part, after: Part, count: int) -> AccountSummary:
    reply = summary.reply.copy()
    reply.add(before.stats.reply, -1)
    reply.add(after.stats.reply)
    threads = summary.threads - len(before.threads) + len(after.threads)
    return replace(summary, messages=count, threads=threads, reply=reply)
