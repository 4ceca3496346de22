"""The "expects a reply" rules and the pending/overdue judgement (pure core)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inboxwatch.core.model import Address, Thread
from inboxwatch.core.rules import (
    RULES,
    Owner,
    Policy,
    _plainly_personal,
    exclusion,
    normalise_address,
)
from inboxwatch.core.standards import Window
from inboxwatch.core.unanswered import evaluate, human_duration
from tests.factory import T0, msg

ME = "me@mydomain.example"
OWNER = Owner.of([ME, "me@alias.example"])


@pytest.mark.parametrize(
    ("extra", "rule"),
    [
        ({"flags": frozenset({"\\Deleted"})}, "deleted"),
        ({"auto_submitted": "auto-replied"}, "auto_submitted"),
        ({"auto_submitted": "auto-generated; type=x"}, "auto_submitted"),
        ({"precedence": "list"}, "precedence"),
        ({"precedence": "junk"}, "precedence"),
        ({"precedence": "auto_reply"}, "precedence"),
        ({"list_headers": True}, "list_headers"),
        ({"content_type": "multipart/report; report-type=feedback-report"}, "delivery_report"),
        ({"null_sender": True}, "null_sender"),
        ({"autoreply_header": True}, "autoreply_header"),
        ({"subject": "Automatic reply: Poster"}, "auto_reply_subject"),
        ({"sender": "MAILER-DAEMON@mx.example"}, "delivery_report"),
        ({"sender": "noreply@shop.example"}, "no_reply_sender"),
        ({"sender": "do-not-reply@shop.example"}, "no_reply_sender"),
        ({"to": ("team@x.example",), "cc": (Address("", ME),)}, "cc_only"),
        # Issue 18, item 3: machine-sent without the standard marks.
        ({"machine": "bulk:Feedback-ID"}, "bulk_header"),
        ({"machine": "notification:X-GitHub-Reason"}, "notification_header"),
        ({"machine": "automated:X-MS-Exchange-Inbox-Rules-Loop"}, "automated_header"),
        ({"subject": "Automatisk svar: Möte"}, "auto_reply_subject"),
        ({"subject": "Resposta automática: Reunião"}, "auto_reply_subject"),
        ({"subject": "Automatyczna odpowiedź: Spotkanie"}, "auto_reply_subject"),
        ({"subject": "自動応答: 会議"}, "auto_reply_subject"),
        # Issue 18, item 6: list traffic stays out unless it was written to you.
        ({"list_headers": True, "list_id": True, "to": ("dev@lists.example",)}, "list_headers"),
        ({"list_headers": True}, "list_headers"),  # List-Unsubscribe alone: a newsletter
        ({"list_headers": True, "list_id": True}, "list_headers"),  # delivery "To: you" alone
        (
            {"list_headers": True, "list_id": True, "machine": "bulk:List-Unsubscribe-Post"},
            "bulk_header",
        ),
        ({"precedence": "bulk", "to": ("all@x.example",)}, "precedence"),
        ({"precedence": "bulk"}, "precedence"),  # bulk mail to one reader
        ({"precedence": "list", "to": ("dev@lists.example",), "list_id": True}, "precedence"),
    ],
)
def test_each_rule_names_itself(extra, rule):
    found = exclusion(msg("x", **extra), OWNER, Policy())
    assert found is not None and found.rule == rule and found.reason


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"auto_submitted": "no"},
        {"precedence": "first-class"},
        {"sender": "noreply@shop.example", "reply_to": (Address("Lena", "lena@shop.example"),)},
        {"to": ("team@x.example",), "cc": ()},  # Bcc or an unknown alias: still for you
        {"subject": "Re: automatic replies are annoying"},
        # A discussion list's copy of mail written To you (To: maintainer, Cc: list).
        {"list_headers": True, "list_id": True, "cc": (Address("", "dev@lists.example"),)},
        {"list_headers": True, "list_id": True, "to": (ME, "dev@lists.example")},
        {
            "list_headers": True,
            "list_id": True,
            "precedence": "list",
            "cc": (Address("", "dev@lists.example"),),
        },
        {
            "precedence": "bulk",  # older Mailman's mark on a discussion list's copy
            "list_headers": True,
            "list_id": True,
            "cc": (Address("", "dev@lists.example"),),
        },
    ],
)
def test_person_to_person_mail_expects_a_reply(extra):
    assert exclusion(msg("x", **extra), OWNER, Policy()) is None


def test_include_cc_and_ignore_lists():
    cc = msg("x", to=("t@x.example",), cc=(Address("", ME),))
    assert exclusion(cc, OWNER, Policy(include_cc=True)) is None
    listed = cc._replace(list_headers=True, list_id=True)  # Cc'd on a list thread (To: t@)
    assert exclusion(listed, OWNER, Policy(include_cc=True)) is None
    assert exclusion(listed, OWNER, Policy()).rule == "list_headers"
    policy = Policy(ignore_senders=("*@Jira.example",), ignore_subjects=(re.compile(r"^\[CI\]"),))
    assert exclusion(msg("y", sender="bot@jira.example"), OWNER, policy).category == "ignored"
    assert exclusion(msg("z", subject="[CI] red"), OWNER, policy).category == "ignored"


def test_owner_identity():
    assert normalise_address("Me+Work@MyDomain.example") == ME
    assert OWNER.wrote(msg("a", sender="ME@alias.example"))
    assert not OWNER.wrote(msg("b", sender=ME, sender_ambiguous=True))


def judge(messages, now_hours, window=timedelta(hours=24)):
    threads = [Thread("<t>", tuple(messages))]
    now = T0 + timedelta(hours=now_hours)
    out = evaluate("acct", threads, OWNER, Policy(), now, Window(window))
    return out.overdue, out.stats


def test_pending_after_the_latest_reply_and_answered_flag():
    q = msg("q", hours=0)
    reply = msg("r", sender=ME, hours=5)
    again = msg("a", hours=10)
    findings, stats = judge([q, reply, again], 40)
    assert [f.message_ids for f in findings] == [("<a>",)]
    assert findings[0].waiting_since == T0 + timedelta(hours=10)  # waited 30 of the 40 hours
    assert "your last reply was 5 hours earlier" in findings[0].reason
    flagged = msg("f", hours=12, flags=frozenset({"\\Answered"}))
    findings, stats = judge([q, flagged], 40)
    assert findings == [] and stats.answered == 1


def test_overdue_only_past_the_window_and_duplicates_count_once():
    q = msg("q", hours=0)
    copy = msg("q", hours=0, folder="Support")
    findings, stats = judge([q, copy], 23)
    assert findings == [] and stats.pending == 1
    findings, _ = judge([q, copy], 25)
    assert findings[0].message_ids == ("<q>",) and findings[0].uids == (q.uid,)


def test_reply_standard_times_first_replies():
    from inboxwatch.core.model import ReplyStandard

    fast = [msg("a", hours=0), msg("r1", sender=ME, hours=2), msg("r2", sender=ME, hours=3)]
    slow = [msg("b", hours=0), msg("b2", hours=1), msg("s", sender=ME, hours=30)]
    never = [msg("c", hours=0)]
    young = [msg("d", hours=99)]
    reply = ReplyStandard()
    for group in (fast, slow, never, young):
        out = evaluate(
            "a",
            [Thread("<t>", tuple(group))],
            OWNER,
            Policy(),
            T0 + timedelta(hours=100),
            Window(timedelta(hours=24)),
        )
        reply.add(out.stats.reply)
    assert (reply.conversations, reply.answered, reply.judged) == (4, 2, 3)
    assert reply.delays == [2 * 3600, 30 * 3600]
    assert reply.percentile(0.5) == 2 * 3600 and reply.percentile(0.9) == 30 * 3600
    assert reply.share_within_window() == 1 / 3


def test_human_duration():
    assert human_duration(timedelta(days=2, hours=3, minutes=5)) == "2 days 3 hours"
    assert human_duration(timedelta(hours=1, minutes=1)) == "1 hour 1 minute"
    assert human_duration(timedelta(seconds=30)) == "0 minutes"


def mostly(plain, *others):
    """The plain value four times in five: a message must be plain in all but one or two
    facts for the screen's implication to be tested at all."""
    return st.sampled_from([plain] * (4 * len(others)) + list(others))


addresses = st.sampled_from(
    ["anna@client.example", "noreply@shop.example", "MAILER-DAEMON@mx.example", ME, "x"]
)
address_lists = st.lists(addresses.map(lambda a: Address("", a)), max_size=2).map(tuple)
mail_facts = st.fixed_dictionaries(
    {
        "folder": mostly("INBOX", "Sent"),
        "sender": mostly("anna@client.example", "noreply@shop.example", "MAILER-DAEMON@x.example"),
        "subject": mostly("Hello", "Automatic reply: x", "Out of office"),
        "to": st.lists(addresses, max_size=2).map(tuple),
        "cc": st.one_of(st.just(()), st.just(()), st.just(()), address_lists),
        "reply_to": address_lists,
        "flags": mostly(frozenset({"\\Seen"}), frozenset({"\\Deleted"})),
        "auto_submitted": mostly("", "no", "auto-replied", " no ; x"),
        "precedence": mostly("", "bulk", "first-class", " list"),
        "list_headers": mostly(False, True),
        "content_type": mostly("text/plain", "multipart/report"),
        "null_sender": mostly(False, True),
        "autoreply_header": mostly(False, True),
    }
)
policies = st.builds(
    Policy,
    include_cc=st.booleans(),
    ignore_senders=mostly((), ("*@shop.example",)),
    ignore_subjects=mostly((), (re.compile("Hello"),)),
    sent_folders=mostly(frozenset({"Sent"}), frozenset()),
)


@settings(max_examples=1500, deadline=None)
@given(mail_facts, policies)
def test_the_quick_screen_passes_only_mail_no_rule_excludes(facts, policy):
    message = msg("m", **facts)
    if _plainly_personal(message, policy):
        assert all(rule(message, OWNER, policy) is None for rule in RULES)
