"""A kept report brought forward by a change (core.splice) equals a full scan, always.

Random mailboxes (tests/unit/test_incremental.py's: colliding ids and subjects, lone
unlinked mail, Gmail's thread ids and label copies) are scanned whole; then random
changes (new mail, flags, removals, mail falling out of the lookback, later mail coming
into the read's time) are spliced into that report, and the result must be what a scan
of the whole changed mailbox gives, but for the reply standard's `judged` count, which a
report carried forward keeps as of its read (core.carried).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from inboxwatch.core.bodytext import Details
from inboxwatch.core.carried import advance
from inboxwatch.core.incremental import Key
from inboxwatch.core.model import AccountSummary, MessageMeta, Report
from inboxwatch.core.rules import Policy
from inboxwatch.core.scan import AccountPlan
from inboxwatch.core.splice import Change, names_of, part, region, spliced
from tests.factory import T0
from tests.unit.test_incremental import OWNER, POLICY, RULED, random_change, random_mailbox

LOOKBACK = timedelta(hours=200)
BODIES = {  # by subject: what a pending message's body says (core.refine)
    "Hello": Details("Thanks, that fixed it!", False),
    "Quote": Details(None, False, "REQUEST", "Planning", "20261201T100000Z"),
}


def plan_of(policy: Policy) -> AccountPlan:
    return AccountPlan(
        *("work", ("me@mydomain.example",), ("INBOX",), ("Sent",)),
        *(timedelta(hours=24), LOOKBACK, policy),
        followup_after=timedelta(hours=20),
    )


def read(messages: Sequence[MessageMeta]) -> dict[Key, Details]:
    return {(m.folder, m.uid): BODIES[m.subject] for m in messages if m.subject in BODIES}


class Cache:
    """The kept report's messages, as the state's cache answers for them."""

    def __init__(self, messages: dict[Key, MessageMeta]) -> None:
        self.messages = messages
        self.asked = 0

    def naming(self, names: Collection[str]) -> set[Key]:
        self.asked += 1
        return {k for k, m in self.messages.items() if not names_of(m).isdisjoint(names)}

    def meta(self, keys: Collection[Key]) -> dict[Key, MessageMeta]:
        return {k: self.messages[k] for k in keys if k in self.messages}


def read_at(mailbox: dict[Key, MessageMeta], now: datetime) -> dict[Key, MessageMeta]:
    """What a read at `now` takes: the lookback, and nothing later than now."""
    return {k: m for k, m in mailbox.items() if now - LOOKBACK <= m.received <= now}


def scanned(plan: AccountPlan, messages: dict[Key, MessageMeta], now: datetime) -> Report:
    whole = part(plan, list(messages.values()), OWNER, plan.policy, now, read)
    summary = AccountSummary(
        *("work", ("INBOX",), ("Sent",), len(messages), len(whole.threads)),
        *(plan.window, whole.stats.reply.copy(), bool(plan.policy.rules)),
    )
    return Report(now, now, plan.window, [summary], stats=whole.stats, **whole.lists)


def comparable(report: Report) -> tuple[object, ...]:
    stats = report.stats
    reply = replace(stats.reply, judged=0, delays=sorted(stats.reply.delays), each=[])
    summaries = [
        replace(a, reply=replace(a.reply, judged=0, delays=sorted(a.reply.delays), each=[]))
        for a in report.accounts
    ]
    each = [Counter(a.reply.each) for a in report.accounts]
    lists = (report.overdue, report.waiting, report.invitations)
    return (
        replace(stats, reply=reply),
        summaries,
        each,
        *lists,
        report.awaiting,
        report.awaiting_soon,
    )


def change_of(before: dict[Key, MessageMeta], after: dict[Key, MessageMeta]) -> Change:
    new = {k: m for k, m in after.items() if before.get(k) != m}
    return Change(new, set(before) - set(after))


@settings(max_examples=400, deadline=None)
@given(
    st.randoms(use_true_random=False),
    st.integers(0, 40),
    st.integers(1, 6),
    st.sampled_from([POLICY, RULED]),
)
def test_a_spliced_report_equals_a_full_scan(
    rnd: random.Random, size: int, changes: int, policy: Policy
) -> None:
    plan = plan_of(policy)
    mailbox, hours = random_mailbox(rnd, size)
    then = T0 + timedelta(hours=hours)
    kept = scanned(plan, read_at(mailbox, then), then)
    seen = read_at(mailbox, then)
    for _ in range(changes):
        hours += rnd.random() * 30 * (rnd.random() < 0.9)  # a clock gone back reads whole
        mailbox = dict(mailbox)
        hours = random_change(rnd, mailbox, hours)
        now = T0 + timedelta(hours=hours)
        current = read_at(mailbox, now)
        found = region(change_of(seen, current), Cache(seen), 10**6)
        assert found is not None
        before = part(plan, found.before, OWNER, policy, kept.as_of, read)
        after = part(plan, found.after, OWNER, policy, now, read)
        carried = advance(kept, [plan], now)
        kept = spliced(carried, "work", before, after, len(current))
        names = (
            "stats",
            "summaries",
            "each",
            "overdue",
            "waiting",
            "invitations",
            "awaiting",
            "soon",
        )
        for name, got, want in zip(
            names, comparable(kept), comparable(scanned(plan, current, now)), strict=True
        ):
            assert got == want, (name, got, want)
        seen = current


def test_a_new_message_in_a_thread_reads_only_that_thread() -> None:
    from tests.factory import msg

    mailbox = {
        (m.folder, m.uid): m
        for m in [
            msg("a1", subject="Quote", hours=1),
            msg("b1", subject="Dinner", hours=2, sender="bo@other.example"),
            msg("b2", refs=("b1",), subject="Re: Dinner", hours=3, folder="Sent",
                sender="me@mydomain.example", to=("bo@other.example",)),
        ]
    }  # fmt: skip
    reply = msg("a2", irt=("a1",), subject="Re: Quote", hours=4, folder="Sent")
    found = region(Change({("Sent", reply.uid): reply}), Cache(mailbox), 100)
    assert found is not None
    assert {m.message_id for m in found.after} == {"<a1>", "<a2>"}
    assert {m.message_id for m in found.before} == {"<a1>"}


def test_a_region_past_its_limit_is_refused() -> None:
    from tests.factory import msg

    chain = [msg(f"c{n}", irt=(f"c{n - 1}",) if n else (), hours=n) for n in range(20)]
    mailbox = {(m.folder, m.uid): m for m in chain}
    new = msg("c20", irt=("c19",), hours=21)
    assert region(Change({(new.folder, new.uid): new}), Cache(mailbox), 10) is None
    assert region(Change({(new.folder, new.uid): new}), Cache(mailbox), 21) is not None
