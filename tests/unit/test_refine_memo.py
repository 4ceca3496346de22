"""A running service's body checks (core.refine with its memo) equal a scan's, and read
each flagged thread's bodies once: the threads a poll did not touch are not judged or
read again, and a thread whose bodies could not be read is read at the next poll."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from inboxwatch.core.bodytext import Details
from inboxwatch.core.model import MessageMeta
from inboxwatch.core.refine import refine
from inboxwatch.core.rules import Owner, Policy
from inboxwatch.core.scan import ScanMemo, counterpart_matcher
from inboxwatch.core.standards import Window
from inboxwatch.core.threads import build_threads
from inboxwatch.core.unanswered import Outcome, evaluate
from tests.factory import T0, msg

ME = "me@mydomain.example"
OWNER = Owner.of([ME])
POLICY = Policy(sent_folders=frozenset({"Sent"}), closing_messages=True)
WINDOW = Window(timedelta(hours=24))
BODIES = {
    "Thanks": Details("Thanks, that fixed it!", False),
    "Invoice": Details("Could you send the invoice again?", False),
    "Meeting": Details(None, False, "REQUEST", "Planning", "20261201T100000Z"),
}


class Reader:
    """Bodies by subject; records what each poll asked, and fails when told to."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []
        self.fail = False

    def __call__(self, messages: Sequence[MessageMeta]) -> dict[tuple[str, int], Details]:
        self.asked.append(sorted(m.subject for m in messages))
        if self.fail:
            return {}  # core.bodies: a failed read is logged and judged by headers
        return {(m.folder, m.uid): BODIES.get(m.subject, Details("Hi", False)) for m in messages}


def mailbox() -> dict[tuple[str, int], MessageMeta]:
    question = msg("q1", subject="Help", hours=0)
    reply = msg("r1", irt=("q1",), sender=ME, to=("anna@client.example",), folder="Sent", hours=1)
    thanks = msg("t1", irt=("r1",), refs=("q1", "r1"), subject="Thanks", hours=2)
    invoice = msg("i1", subject="Invoice", sender="bo@other.example", hours=3)
    meeting = msg("m1", subject="Meeting", sender="cy@other.example", hours=4)
    return {(m.folder, m.uid): m for m in (question, reply, thanks, invoice, meeting)}


def service_poll(
    memo: ScanMemo, box: dict, hours: float, read: Reader, policy: Policy = POLICY
) -> Outcome:
    messages = list(box.values())
    now = T0 + timedelta(hours=hours)
    threads = memo.threads.update(messages, counterpart_matcher(OWNER), OWNER)
    outcome = memo.verdicts.evaluate("work", threads, OWNER, policy, now, WINDOW)
    refine("work", outcome, threads, (OWNER, policy, now, WINDOW), read, memo.settled)
    return outcome


def scan(box: dict, hours: float, policy: Policy = POLICY) -> Outcome:
    now = T0 + timedelta(hours=hours)
    threads = build_threads(list(box.values()), counterpart_matcher(OWNER))
    outcome = evaluate("work", threads, OWNER, policy, now, WINDOW)
    refine("work", outcome, threads, (OWNER, policy, now, WINDOW), Reader())
    return outcome


def same(a: Outcome, b: Outcome) -> None:
    assert (a.overdue, a.waiting, a.invitations) == (b.overdue, b.waiting, b.invitations)
    assert replace(a.stats, reply=None) == replace(b.stats, reply=None)


def test_a_poll_reads_only_the_bodies_of_the_threads_its_changes_touched() -> None:
    memo, read, box = ScanMemo(), Reader(), mailbox()
    first = service_poll(memo, box, 30, read)
    same(first, scan(box, 30))
    assert read.asked == [["Invoice", "Meeting", "Thanks"]]
    assert [f.subject for f in first.overdue] == ["Invoice"]  # "Thanks" closed its thread
    assert [f.subject for f in first.invitations] == ["Meeting"]

    new = msg("n1", subject="Quote", sender="dee@other.example", hours=31)
    box[(new.folder, new.uid)] = new
    same(service_poll(memo, box, 60, read), scan(box, 60))  # later: "Quote" is overdue too
    assert read.asked[1:] == [["Quote"]]

    same(service_poll(memo, box, 61, read), scan(box, 61))  # nothing changed: nothing read
    assert read.asked[2:] == []


def test_bodies_that_could_not_be_read_are_read_at_the_next_poll() -> None:
    memo, read, box = ScanMemo(), Reader(), mailbox()
    read.fail = True
    failed = service_poll(memo, box, 30, read)
    assert [f.subject for f in failed.overdue] == ["Thanks", "Invoice", "Meeting"]  # headers
    read.fail = False
    same(service_poll(memo, box, 31, read), scan(box, 31))
    assert read.asked == [["Invoice", "Meeting", "Thanks"]] * 2


def test_a_changed_policy_judges_every_flagged_thread_again() -> None:
    memo, read, box = ScanMemo(), Reader(), mailbox()
    service_poll(memo, box, 30, read)
    plain = replace(POLICY, closing_messages=False)  # the config changed: "Thanks" counts
    same(service_poll(memo, box, 31, read, plain), scan(box, 31, plain))
    assert read.asked == [["Invoice", "Meeting", "Thanks"]] * 2
