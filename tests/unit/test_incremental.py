"""A running service's incremental threads and verdicts equal a full rebuild, always.

Random mailboxes (colliding ids and subjects, the owner and others writing, lone
unlinked mail for the subject fallback) go through random polls: new messages,
flag changes, removals, mail falling out of the lookback, a later `now`; after each,
the memo's threads, outcome and awaited answers must be exactly what build_threads,
evaluate and awaiting give for the whole mailbox.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from inboxwatch.core.awaiting import awaiting
from inboxwatch.core.clock import BusinessHours
from inboxwatch.core.incremental import Key
from inboxwatch.core.model import Address, MessageMeta, Thread
from inboxwatch.core.rules import Owner, Policy
from inboxwatch.core.scan import ScanMemo, counterpart_matcher
from inboxwatch.core.standards import Rule, Window
from inboxwatch.core.threads import build_threads
from inboxwatch.core.unanswered import Outcome, evaluate
from tests.factory import T0, msg

ME = "me@mydomain.example"
OWNER = Owner.of([ME])
POLICY = Policy(sent_folders=frozenset({"Sent"}))
# Rules and business hours: findings turn overdue in another order than they began waiting.
RULED = replace(
    POLICY,
    rules=(
        Rule(1, senders=("anna@*",), window=Window(timedelta(hours=4)), priority="high"),
        Rule(2, subjects=(re.compile("^Quote"),), ignore=True),
        Rule(3, senders=("bo@*",), window=Window(timedelta(hours=8), "hours")),
    ),
    clock=BusinessHours("Europe/Berlin", frozenset(range(5)), ((540, 1020),)),
)
WINDOW = Window(timedelta(hours=24))
PEOPLE = ["anna@client.example", "bo@other.example", "noreply@shop.example"]
SUBJECTS = ["Hello", "Re: Hello", "Invoice", "Quote", ""]


def random_message(rnd: random.Random, hours: float) -> MessageMeta:
    ids = [f"m{rnd.randrange(15)}" for _ in range(rnd.randrange(3))]
    mine = rnd.random() < 0.35
    person = rnd.choice(PEOPLE)
    made = msg(
        rnd.choice([None, f"m{rnd.randrange(15)}", f"u{rnd.randrange(10**6)}"]),
        refs=tuple(ids[:-1]),
        irt=tuple(ids[-1:]) if ids and rnd.random() < 0.7 else (),
        sender=ME if mine else person,
        to=(person,) if mine else (ME,),
        hours=hours,
        folder="Sent" if mine and rnd.random() < 0.8 else "INBOX",
        subject=rnd.choice(SUBJECTS),
        flags=frozenset(rnd.sample(["\\Seen", "\\Answered", "\\Deleted"], rnd.randrange(3))),
        reply_to=(Address("", "anna@client.example"),) if rnd.random() < 0.1 else (),
    )
    # Gmail's ids: a conversation shared without linking headers, a label copy of one message
    if rnd.random() < 0.3:
        made = made._replace(thread_hint=f"t{rnd.randrange(4)}")
    if rnd.random() < 0.2:
        made = made._replace(provider_id=f"p{rnd.randrange(4)}")
    return made


def random_mailbox(rnd: random.Random, size: int) -> tuple[dict[Key, MessageMeta], float]:
    """`size` random messages an hour or so apart; and the hour of the last."""
    hours = 0.0
    mailbox: dict[Key, MessageMeta] = {}
    for _ in range(size):
        hours += rnd.random() * 10
        m = random_message(rnd, hours)
        mailbox[(m.folder, m.uid)] = m
    return mailbox, hours


def random_change(rnd: random.Random, mailbox: dict[Key, MessageMeta], hours: float) -> float:
    """One change on the server, in `mailbox`: new mail (sometimes dated before the newest,
    or a little later), flags changed or mail archived or expunged on another device, or
    nothing; returns the hour of the newest mail."""
    action = rnd.random()
    if action < 0.5 or not mailbox:
        for _ in range(rnd.randrange(1, 4)):
            hours += rnd.random() * 10
            shift = rnd.random() * 30 * (rnd.random() < 0.3) - 5 * (rnd.random() < 0.1)
            m = random_message(rnd, hours - shift)
            mailbox[(m.folder, m.uid)] = m
    elif action < 0.7:
        key = rnd.choice(list(mailbox))
        mailbox[key] = mailbox[key]._replace(flags=frozenset({"\\Answered"}))
    elif action < 0.9:
        for _ in range(rnd.randrange(1, 4)):
            if mailbox:
                del mailbox[rnd.choice(list(mailbox))]
    return hours


def shape(threads: list[Thread]) -> set[tuple[str, tuple[tuple[str, int], ...]]]:
    return {(t.thread_id, tuple((m.folder, m.uid) for m in t.messages)) for t in threads}


def same_outcome(a: Outcome, b: Outcome) -> None:
    assert a.overdue == b.overdue
    assert a.waiting == b.waiting
    assert sorted(a.stats.reply.delays) == sorted(b.stats.reply.delays)
    assert Counter(a.stats.reply.each) == Counter(b.stats.reply.each)
    strip = lambda o: replace(o.stats, reply=replace(o.stats.reply, delays=[], each=[]))  # noqa: E731
    assert strip(a) == strip(b)


def check(
    memo: ScanMemo,
    mailbox: dict[tuple[str, int], MessageMeta],
    hours: float,
    policy: Policy = POLICY,
) -> None:
    messages = list(mailbox.values())
    now = T0 + timedelta(hours=hours)
    counterpart = counterpart_matcher(OWNER)
    threads = memo.threads.update(messages, counterpart, OWNER)
    full = build_threads(messages, counterpart)
    assert shape(threads) == shape(full)
    same_outcome(
        memo.verdicts.evaluate("work", threads, OWNER, policy, now, WINDOW),
        evaluate("work", full, OWNER, policy, now, WINDOW),
    )
    after = timedelta(hours=20)
    kept = awaiting("work", threads, OWNER, policy, now, after, memo.owed)
    assert kept == awaiting("work", full, OWNER, policy, now, after)


@settings(max_examples=300, deadline=None)
@given(
    st.randoms(use_true_random=False),
    st.integers(0, 40),
    st.integers(1, 8),
    st.sampled_from([POLICY, RULED]),
)
def test_incremental_polls_equal_a_full_rebuild(
    rnd: random.Random, size: int, polls: int, policy: Policy
):
    memo = ScanMemo()
    mailbox, hours = random_mailbox(rnd, size)
    check(memo, mailbox, hours + 1, policy)
    for _ in range(polls):
        if rnd.random() < 0.5:  # a service indexes a rebuild between polls; else the next
            memo.threads.settle()  # poll that finds a change does
        if rnd.random() < 0.15 and mailbox:  # the oldest fell out of the lookback
            cut = min(m.received for m in mailbox.values()) + timedelta(hours=rnd.random() * 20)
            for key in [k for k, m in mailbox.items() if m.received < cut]:
                del mailbox[key]
        else:
            hours = random_change(rnd, mailbox, hours)
        hours += rnd.random() * 30
        check(memo, mailbox, hours, policy)


def test_a_new_message_touches_only_its_thread():
    memo = ScanMemo()
    question = msg("q1", subject="Question", hours=0)
    other = msg("o1", subject="Other", sender="bo@other.example", hours=1)
    mailbox = {(m.folder, m.uid): m for m in (question, other)}
    first = {
        t.thread_id: t
        for t in memo.threads.update(list(mailbox.values()), counterpart_matcher(OWNER), OWNER)
    }
    reply = msg("r1", irt=("q1",), sender=ME, to=("anna@client.example",), folder="Sent", hours=2)
    mailbox[(reply.folder, reply.uid)] = reply
    second = {
        t.thread_id: t
        for t in memo.threads.update(list(mailbox.values()), counterpart_matcher(OWNER), OWNER)
    }
    assert second["<o1>"] is first["<o1>"]  # untouched: the same object, not rebuilt
    assert [m.message_id for m in second["<q1>"].messages] == ["<q1>", "<r1>"]


def _update(memo: ScanMemo, mailbox: dict[tuple[str, int], MessageMeta]) -> dict[str, Thread]:
    threads = memo.threads.update(list(mailbox.values()), counterpart_matcher(OWNER), OWNER)
    return {t.thread_id: t for t in threads}


def test_a_removed_message_rebuilds_only_the_threads_it_was_in():
    """Archiving a message (or its falling out of the lookback) is the commonest change of
    all: it splits its thread where it was the link, and leaves the others as they were."""
    memo = ScanMemo()
    question = msg("q1", subject="Question", hours=0)
    reply = msg("r1", irt=("q1",), sender=ME, to=("anna@client.example",), folder="Sent", hours=1)
    again = msg("q2", irt=("r1",), subject="Re: Question", hours=2)  # names the reply alone
    other = msg("o1", subject="Other", sender="bo@other.example", hours=3)
    mailbox = {(m.folder, m.uid): m for m in (question, reply, again, other)}
    first = _update(memo, mailbox)
    assert [m.message_id for m in first["<q1>"].messages] == ["<q1>", "<r1>", "<q2>"]
    del mailbox[(reply.folder, reply.uid)]
    second = _update(memo, mailbox)
    assert second["<o1>"] is first["<o1>"]  # untouched: the same object, not rebuilt
    assert [m.message_id for m in second["<q1>"].messages] == ["<q1>"]
    assert [m.message_id for m in second["<r1>"].messages] == ["<q2>"]  # its root: the gap
    assert shape(list(second.values())) == shape(build_threads(list(mailbox.values())))


def test_a_later_copy_of_a_message_without_message_id_joins_the_first():
    """Two messages without Message-ID and with the same From, To, Date and Subject are
    copies of one (threads.synthetic_id): one thread, whichever poll brought each."""
    memo = ScanMemo()
    first = msg(None, refs=("m0",), subject="Invoice", sender="bo@other.example")
    mailbox = {(first.folder, first.uid): first}
    _update(memo, mailbox)
    copy = msg(None, irt=("m1",), subject="Invoice", sender="bo@other.example", folder="Later")
    mailbox[(copy.folder, copy.uid)] = copy
    threads = _update(memo, mailbox)
    assert shape(list(threads.values())) == shape(build_threads(list(mailbox.values())))
    assert len(threads) == 1


def test_the_awaited_answers_are_judged_again_when_the_policy_changes():
    """A teammate is nobody who owes you an answer (core.awaiting): adding one to the
    config changes what a running service's memo had judged of the same threads."""
    memo = ScanMemo()
    asked = msg("a1", sender=ME, to=("bo@other.example",), folder="Sent", subject="Q")
    threads = _update(memo, {(asked.folder, asked.uid): asked}).values()
    now, after = T0 + timedelta(days=3), timedelta(days=1)
    assert len(awaiting("work", threads, OWNER, POLICY, now, after, memo.owed)[0]) == 1
    team = replace(POLICY, team=("bo@other.example",))
    assert awaiting("work", threads, OWNER, team, now, after, memo.owed) == ([], [])


def test_new_mail_with_a_subject_seen_before_rebuilds_only_where_it_could_join():
    """Most new mail shares its subject with some older thread ("Invoice"); the subject
    fallback joins it only to one between the same two parties (core.reach). Anyone
    else's is threaded alone, and the other threads stay as they were."""
    memo = ScanMemo()
    asked = msg("a1", sender=ME, to=("anna@client.example",), folder="Sent", subject="Invoice")
    other = msg("o1", subject="Other", sender="bo@other.example", hours=1)
    mailbox = {(m.folder, m.uid): m for m in (asked, other)}
    first = _update(memo, mailbox)
    stranger = msg("s1", subject="Invoice", sender="cy@third.example", hours=2)
    mailbox[(stranger.folder, stranger.uid)] = stranger
    second = _update(memo, mailbox)
    assert second["<a1>"] is first["<a1>"] and second["<o1>"] is first["<o1>"]  # not rebuilt
    assert [m.message_id for m in second["<s1>"].messages] == ["<s1>"]
    anna = msg("n1", subject="Invoice", sender="anna@client.example", hours=3)
    mailbox[(anna.folder, anna.uid)] = anna
    third = _update(memo, mailbox)
    assert [m.message_id for m in third["<a1>"].messages] == ["<a1>", "<n1>"]  # the fallback
    assert third["<o1>"] is first["<o1>"]
    full = build_threads(list(mailbox.values()), counterpart_matcher(OWNER))
    assert shape(list(third.values())) == shape(full)


def test_a_rebuild_is_indexed_between_polls_or_by_the_poll_that_needs_it():
    """A first poll gives its report without indexing its threads (~0.35 s at 100,000):
    a poll with nothing new does not need the indexes, one with a change builds them."""
    rnd = random.Random(7)
    mailbox = [random_message(rnd, float(n)) for n in range(30)]
    counterpart = counterpart_matcher(OWNER)
    memo = ScanMemo().threads
    first = memo.update(mailbox, counterpart, OWNER)
    assert not memo.settled
    assert shape(memo.update(mailbox, counterpart, OWNER)) == shape(first)
    assert not memo.settled  # nothing changed: nothing looked up
    memo.settle()
    assert memo.settled
    again = ScanMemo().threads
    again.update(mailbox, counterpart, OWNER)
    more = [*mailbox, random_message(rnd, 40.0)]
    assert shape(again.update(more, counterpart, OWNER)) == shape(build_threads(more, counterpart))
    assert again.settled
