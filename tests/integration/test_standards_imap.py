"""Issue 19 end to end against the test Dovecot: rules, business hours and holidays,
VIP by behaviour, and reminders that escalate across consecutive digests."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from inboxwatch.config import Settings
from inboxwatch.standardsconfig import RuleConfig
from inboxwatch.store.sqlite import SqliteStore
from tests.conftest import NOW, OWNER, mail
from tests.integration.test_service import Recorder, settings_for
from tests.polling import poll_once

pytestmark = pytest.mark.dovecot
H = timedelta(hours=1)
D = 24 * H


def seed_coverage(box) -> None:
    box.add(
        "Sent", mail(OWNER, "zed@else.example", "Re: Unrelated", in_reply_to="<z@e>"), NOW - 5 * D
    )


def by_subject(report) -> dict[str, dict]:
    return {e["subject"]: e for e in report["overdue"]}


def test_rules_set_window_priority_and_ignore(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    box = sent_mailbox
    box.add("INBOX", mail("CFO <cfo@bigclient.example>", OWNER, "Budget"), NOW - 5 * H)
    box.add("INBOX", mail("Jira <jira@tools.example>", OWNER, "[JIRA] ABC-1 updated"), NOW - 30 * H)
    box.add(
        "INBOX",
        mail("Anna <anna@client.example>", "support@mydomain.example", "Help"),
        NOW - 30 * H,
    )
    box.add("INBOX", mail("Bo <bo@x.example>", OWNER, "Lunch"), NOW - 30 * H)
    rules = [
        {"from": ["*@bigclient.example", "ceo@*"], "window": "4h", "priority": "high"},
        {"to": ["support@*"], "window": "2d"},
        {"subjects": ["^\\[JIRA\\]"], "ignore": True},
    ]
    result = scan(addresses=[OWNER, "support@mydomain.example"], rules=rules)
    report = result.json()
    overdue = by_subject(report)
    assert sorted(overdue) == ["Budget", "Lunch"], result.err
    assert (overdue["Budget"]["priority"], overdue["Budget"]["rule"]) == ("high", "rules[1]")
    assert overdue["Budget"]["due"] == (NOW - H).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert overdue["Lunch"]["priority"] == "normal" and overdue["Lunch"]["rule"] is None
    assert report["stats"]["excluded"]["ignored"] == 1  # the JIRA mail, by rules[3]
    assert report["stats"]["pending"] == 1  # Help: 30 hours of a 2-day window
    # Item 6: the reply standard per rule, this week and the week before.
    per_rule = {g["rule"]: g for g in report["stats"]["reply_standard"]["rules"]}
    assert sorted(per_rule, key=str) == [None, "rules[1]", "rules[2]"]
    assert per_rule["rules[1]"]["within_window_share"] == 0.0  # Budget: 5 h of 4 h, no reply
    assert per_rule["rules[2]"]["within_window_share"] is None  # Help: not yet judged
    assert per_rule["rules[1]"]["previous"]["conversations"] == 0
    assert report["stats"]["reply_standard"]["priorities"]["high"]["conversations"] == 1
    bad = scan(rules=[{"subjects": ["(unclosed"], "window": "4h"}])
    assert bad.code == 3 and "rules[1].subjects" in bad.err


def test_business_hours_stop_the_clock_on_weekends_and_days_off(sent_mailbox, scan):
    # NOW is Tuesday 24 Nov 2026, 12:00 UTC = 13:00 in Berlin.
    seed_coverage(sent_mailbox)
    friday = NOW - 4 * D + 3 * H  # Friday 20 Nov, 16:00 in Berlin: one business hour left
    sent_mailbox.add("INBOX", mail("Anna <anna@client.example>", OWNER, "Quote"), friday)
    hours = {"timezone": "Europe/Berlin", "days": "mon-fri", "hours": "09:00-17:00"}
    rules = [{"window": "8 business hours"}]
    plain = scan(rules=rules, business_hours=hours).json()
    [entry] = plain["overdue"]  # 1 h on Friday + 8 h on Monday: due Monday 16:00
    assert entry["business_waiting_hours"] == 13.0  # and 4 more on Tuesday morning
    assert entry["waiting_hours"] == 93.0
    off = scan(
        rules=rules, business_hours={**hours, "holidays": "DE-BE", "days_off": ["2026-11-23"]}
    )
    report = off.json()
    assert report["overdue"] == [] and report["stats"]["pending"] == 1  # Monday was off


def test_vip_from_sent_gives_people_you_wrote_to_first_priority(sent_mailbox, scan):
    box = sent_mailbox
    box.add(
        "Sent", mail(OWNER, "Boss <boss@partner.example>", "Proposal", mid="<p1@m>"), NOW - 10 * D
    )
    box.add("INBOX", mail("Boss <boss@partner.example>", OWNER, "Next steps"), NOW - 30 * H)
    box.add("INBOX", mail("Bo <bo@x.example>", OWNER, "Lunch"), NOW - 31 * H)
    vip = by_subject(scan(vip_from_sent=True).json())
    assert (vip["Next steps"]["priority"], vip["Lunch"]["priority"]) == ("high", "normal")
    assert by_subject(scan().json())["Next steps"]["priority"] == "normal"


def with_standards(settings: Settings, **account) -> Settings:
    updated = settings.accounts[0].model_copy(update=account)
    return settings.model_copy(update={"accounts": [updated]})


def test_reminders_count_digests_escalate_and_stop_once(dovecot, sent_mailbox, tmp_path):
    """Three daily digests: each lists how many before it listed a thread; past
    escalate_after it comes first and marked; a remind = "once" thread is listed once."""
    t0 = datetime(2026, 11, 24, 9, 0, tzinfo=NOW.tzinfo)  # 10:00 in Berlin; digest at 08:00
    box = sent_mailbox
    box.add("Sent", mail(OWNER, "x@y.example", "Re: x", in_reply_to="<x@y>"), t0 - 3 * D)
    box.add("INBOX", mail("Anna <anna@client.example>", OWNER, "Old question"), t0 - 40 * H)
    box.add("INBOX", mail("Bo <bo@x.example>", OWNER, "Newer question"), t0 - 30 * H)
    box.add("INBOX", mail("News <n@letters.example>", OWNER, "Weekly update"), t0 - 30 * H)
    settings = settings_for(dovecot, box.user, tmp_path)
    once = RuleConfig.model_validate({"from": ["n@letters.example"], "remind": "once"})
    settings = with_standards(settings, escalate_after=36 * H, rules=[once])
    texts = []
    store = SqliteStore(tmp_path / "state.db")
    for day in range(3):
        sent = Recorder()
        result = poll_once(settings, store, sent, t0 + day * D)
        assert result.digest is not None
        [message] = sent.sent
        assert message["Subject"].endswith("past their reply window")  # not "> 24h": rules
        texts.append(message.get_body(("plain",)).get_content())
    first, second, third = texts
    assert "Weekly update" in first and "Weekly update" not in second
    assert "1 listed once already (remind = once)" in second
    assert "listed in 1 earlier digest" in second and "listed in 2 earlier digests" in third
    # A day after the first digest Old question is 40 h past its window (> 36 h): listed
    # first and marked; Newer question, 30 h past, is not yet.
    assert "[ESCALATED] Old question" in second and "[ESCALATED] Newer" not in second
    assert "Old question" not in first.split("Newer question")[1]  # longest wait first
    assert third.index("[ESCALATED] Old question") < third.index("[ESCALATED] Newer question")
    assert sorted(store.digests_seen().values()) == [1, 3, 3]
    store.close()
