"""`inboxwatch explain` (issue 18, item 4): a thread's messages, their roles and the
verdict, on IMAP (Dovecot) and on mail on disk (the demo mbox), reported or not."""

from __future__ import annotations

import pytest

from tests.conftest import NOW, OWNER, mail, write_config

pytestmark = pytest.mark.dovecot
ANNA = "Anna Keller <anna@client.example>"


def test_explain_on_imap_names_each_role_and_the_verdict(run, tmp_path, dovecot, sent_mailbox):
    from datetime import timedelta

    h = timedelta(hours=1)
    box = sent_mailbox
    box.add("INBOX", mail(ANNA, subject="Quote", mid="<q1@c.example>"), NOW - 80 * h)
    box.add(
        "Sent",
        mail(OWNER, ANNA, "Re: Quote", mid="<r1@m.example>", in_reply_to="<q1@c.example>"),
        NOW - 70 * h,
    )
    box.add(
        "INBOX",
        mail(ANNA, subject="Re: Quote", mid="<q2@c.example>", in_reply_to="<r1@m.example>"),
        NOW - 50 * h,
    )
    box.add(
        "INBOX",
        mail(ANNA, subject="Automatic reply: Quote", mid="<q3@c.example>",
             in_reply_to="<q2@c.example>", headers={"Auto-Submitted": "auto-replied"}),
        NOW - 49 * h,
    )  # fmt: skip
    box.add(
        "INBOX",
        mail(
            "News <n@news.example>",
            subject="Weekly",
            headers={"List-Unsubscribe": "<mailto:u@n.example>"},
        ),
        NOW - 20 * h,
    )
    config = write_config(tmp_path, dovecot, box.user)
    asof = ("--as-of", NOW.isoformat(), "--config", str(config))
    result = run("explain", "q2@c.example", *asof)
    assert result.code == 0, result.err
    out = result.out
    assert "work: thread <q1@c.example>, 4 message(s)" in out
    assert "yours: a reply   <r1@m.example>" in out
    assert "expects a reply: answered after it   <q1@c.example>" in out
    assert "expects a reply: waiting   <q2@c.example>" in out
    assert "left out: Auto-Submitted: auto-replied   <q3@c.example>" in out
    assert "verdict: overdue: Anna Keller wrote; your last reply was 20 hours earlier" in out
    weekly = run("explain", "--subject", "weekly", *asof)
    assert "left out: mailing-list mail (List-Id/List-Unsubscribe)" in weekly.out
    assert "verdict: not reported: no message in it expects a reply" in weekly.out
    assert run("explain", *asof).code == 2  # neither an id nor --subject
    missing = run("explain", "<nosuch@x.example>", *asof)
    assert missing.code == 2 and "no thread in the lookback holds <nosuch@x.example>" in missing.err


def test_explain_on_the_demo_mailbox(run):
    result = run("explain", "--demo", "--subject", "logo revisions")
    assert result.code == 0
    assert "demo: thread <ben-1@bakery.example>, 3 message(s)" in result.out
    assert "verdict: overdue: Ben Okafor wrote; your last reply was 3 days 18 hours earlier" in (
        result.out
    )


def test_explain_names_the_rule_that_set_the_window_or_left_mail_out(
    run, tmp_path, dovecot, sent_mailbox
):
    """Issue 19: a rule's window and business time in the verdict; `ignore` as the role."""
    from datetime import timedelta

    h = timedelta(hours=1)
    box = sent_mailbox
    box.add("Sent", mail(OWNER, "z@else.example", "Re: x", in_reply_to="<x@y>"), NOW - 90 * h)
    box.add("INBOX", mail(ANNA, subject="Budget", mid="<b1@c.example>"), NOW - 5 * h)
    box.add(
        "INBOX", mail("Jira <j@tools.example>", subject="[JIRA] X-1", mid="<j1@t>"), NOW - 5 * h
    )
    rules = [
        {"from": ["*@client.example"], "window": "8 business hours", "priority": "high"},
        {"subjects": ["^\\[JIRA\\]"], "ignore": True},
    ]
    hours = {"timezone": "UTC", "hours": "08:00-18:00"}
    config = write_config(tmp_path, dovecot, box.user, rules=rules, business_hours=hours)
    asof = ("--as-of", NOW.isoformat(), "--config", str(config))
    # NOW is Tuesday 12:00 UTC: Budget came at 07:00, its clock started at 08:00.
    budget = run("explain", "b1@c.example", *asof).out
    assert "waiting inside the window (due in 4 hours, 8 business hours, rules[1])" in budget
    jira = run("explain", "j1@t", *asof).out
    assert "left out: rules[2] says ignore" in jira
