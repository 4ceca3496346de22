"""Rules per sender, recipient, folder and subject: order, globs, regexes, refusal of bad
input with the rule's place; and what they do to a verdict."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from inboxwatch.config import load_settings
from inboxwatch.core.clock import BusinessHours
from inboxwatch.core.model import Thread
from inboxwatch.core.rules import Owner, Policy, exclusion
from inboxwatch.core.standards import Rule, Window
from inboxwatch.core.unanswered import evaluate
from inboxwatch.core.vip import first_contacts
from inboxwatch.errors import ConfigError
from inboxwatch.service.plans import plan_of
from tests.factory import T0, msg

ME = "me@mydomain.example"
OWNER = Owner.of([ME, "support@mydomain.example"])
DAY = Window(timedelta(hours=24))
ACCOUNT = '[[accounts]]\nname = "work"\nhost = "imap.example.com"\nusername = "me@example.com"\n'


def policy_of(toml: str, tmp_path: Path) -> Policy:
    path = tmp_path / "config.toml"
    path.write_text(ACCOUNT + toml, encoding="utf-8")
    return plan_of(load_settings(path).accounts[0]).policy


def test_first_matching_rule_wins(tmp_path):
    policy = policy_of(
        '[[accounts.rules]]\nfrom = ["ceo@*"]\npriority = "high"\n'
        '[[accounts.rules]]\nfrom = ["*@client.example"]\nwindow = "4h"\n'
        '[[accounts.rules]]\nwindow = "2d"\n',
        tmp_path,
    )
    assert policy.rule_for(msg("a", sender="CEO@Client.Example"), OWNER).index == 1
    assert policy.rule_for(msg("b", sender="anna@client.example"), OWNER).index == 2
    assert policy.rule_for(msg("c", sender="bo@else.example"), OWNER).index == 3  # catch-all


def test_to_folders_and_subjects(tmp_path):
    policy = policy_of(
        '[[accounts.rules]]\nto = ["support@*"]\nwindow = "8h"\n'
        "[[accounts.rules]]\nfolders = [\"Newsletters/*\"]\nsubjects = ['^\\[JIRA\\]']\n"
        "ignore = true\n",
        tmp_path,
    )
    to_support = msg("a", to=("support@mydomain.example",))
    assert policy.rule_for(to_support, OWNER).index == 1
    # `to` looks only at the owner's own addresses among the recipients.
    assert policy.rule_for(msg("b", to=(ME, "support@other.example")), OWNER) is None
    jira = msg("c", folder="Newsletters/Tools", subject="[JIRA] ABC-1 updated")
    assert policy.rule_for(jira, OWNER).index == 2
    assert exclusion(jira, OWNER, policy).reason == "rules[2] says ignore"
    # Every criterion given must match: the right subject in another folder is not enough.
    assert policy.rule_for(jira._replace(folder="INBOX"), OWNER) is None


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('subjects = ["(unclosed"]', "accounts[work].rules[2].subjects"),
        ('from = ["[abc@x"]', "unclosed [ ] set"),
        ('window = "soon"', "is not a duration"),
        ('window = "8 business weeks"', "business time"),
        ('priority = "urgent"', "rules[2].priority"),
        ('remind = "weekly"', "rules[2].remind"),
        ('frm = ["a@b"]', "rules[2].frm: unknown key"),
        ('from = ["a@b"]', "the rule sets nothing"),
        ('ignore = true\nwindow = "4h"', "ignore = true leaves the mail out"),
        ('window = "8 business hours"', "rules[2].window '8 business hours' is business time"),
    ],
)
def test_invalid_rules_are_refused_with_their_place(tmp_path, rule, message):
    path = tmp_path / "config.toml"
    first = '[[accounts.rules]]\nwindow = "4h"\n'
    path.write_text(ACCOUNT + first + "[[accounts.rules]]\n" + rule + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(path)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('timezone = "Mars/Olympus"', "unknown time zone"),
        ('timezone = "UTC"\ndays = "mon-fry"', "days are mon..sun"),
        ('timezone = "UTC"\nhours = "17:00-09:00"', "must run forward"),
        ('timezone = "UTC"\nhours = "9-17"', "is not a time"),
        ('timezone = "UTC"\nholidays = "XX"', "holidays = 'XX'"),
    ],
)
def test_invalid_business_hours_are_refused(tmp_path, table, message):
    path = tmp_path / "config.toml"
    path.write_text(ACCOUNT + "[accounts.business_hours]\n" + table + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(path)


def judge(policy, messages, hours):
    threads = [Thread(f"<t{n}>", (m,)) for n, m in enumerate(messages)]
    return evaluate("work", threads, OWNER, policy, T0 + timedelta(hours=hours), DAY)


def test_a_rule_sets_window_priority_and_the_reason_names_it():
    policy = Policy(
        rules=(
            Rule(
                1,
                senders=("*@bigclient.example",),
                window=Window(timedelta(hours=4)),
                priority="high",
            ),
        )
    )
    big = msg("big", sender="cfo@bigclient.example")
    other = msg("other", sender="anna@client.example")
    out = judge(policy, [big, other], 5)
    assert [f.message_ids for f in out.overdue] == [("<big>",)]
    found = out.overdue[0]
    assert (found.priority, found.rule, found.due) == ("high", "rules[1]", T0 + timedelta(hours=4))
    assert found.reasons[0].detail == "4h (rules[1])"
    assert [f.priority for f in out.waiting] == ["normal"]


def test_business_windows_wait_for_opening_time_and_show_business_waiting():
    # T0 is Sunday 2026-11-01 00:00 UTC; in London, Monday opens at 09:00 UTC.
    clock = BusinessHours("Europe/London", frozenset(range(5)), ((540, 1020),))
    policy = Policy(rules=(Rule(1, window=Window(timedelta(hours=8), "hours")),), clock=clock)
    sunday = msg("q")
    assert judge(policy, [sunday], 40).waiting  # Monday 16:00: 7 business hours
    late = judge(policy, [sunday], 42).overdue  # Monday 18:00: 8 business hours are done
    assert late and late[0].due == T0 + timedelta(hours=41)  # Monday 17:00
    assert late[0].business_waiting == timedelta(hours=8)
    days = Policy(rules=(Rule(1, window=Window(timedelta(days=2), "days")),), clock=clock)
    assert judge(days, [sunday], 64.5).waiting and judge(days, [sunday], 65.5).overdue


def test_the_reply_standard_uses_each_conversations_own_window():
    policy = Policy(rules=(Rule(1, senders=("anna@*",), window=Window(timedelta(hours=1))),))
    anna = Thread("<a>", (msg("a"), msg("ra", sender=ME, hours=2)))
    bo = Thread("<b>", (msg("b", sender="bo@x.example"), msg("rb", sender=ME, hours=2)))
    out = evaluate("work", [anna, bo], OWNER, policy, T0 + timedelta(hours=3), DAY)
    assert (out.stats.reply.judged, out.stats.reply.within_window) == (2, 1)


def test_escalated_after_overdue_long_enough():
    policy = Policy(escalate_after=timedelta(days=2))
    out = judge(policy, [msg("old"), msg("new", hours=30)], 24 + 49)
    assert [(f.message_ids, f.escalated) for f in out.overdue] == [
        (("<old>",), True),
        (("<new>",), False),
    ]


def test_vip_from_sent_counts_conversations_you_started():
    started = msg("s", sender=ME, to=("boss@partner.example",), folder="Sent", subject="Plan")
    replied = msg("r", sender=ME, to=("anna@client.example",), irt=("x",), folder="Sent")
    re_subject = msg("t", sender=ME, to=("bo@x.example",), subject="Re: hi", folder="Sent")
    vips = first_contacts([started, replied, re_subject], OWNER, T0 + timedelta(days=1))
    assert vips == frozenset({"boss@partner.example"})
    policy = replace(Policy(), vips=vips)
    out = judge(policy, [msg("q", sender="Boss@Partner.example", hours=30), msg("w")], 60)
    assert {f.message_ids[0]: f.priority for f in out.overdue} == {"<q>": "high", "<w>": "normal"}
    ruled = replace(policy, rules=(Rule(1, senders=("boss@*",), priority="low"),))
    assert judge(ruled, [msg("q", sender="boss@partner.example")], 30).overdue[0].priority == "low"


def test_check_shows_rules_and_days_off_as_the_config_writes_them():
    from inboxwatch.config import masked_json

    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    shown = json.loads(masked_json(load_settings(example)))
    account = shown["accounts"][0]
    assert account["rules"][0]["from"] == ["*@bigclient.example", "ceo@*"]
    assert account["business_hours"]["days_off"] == ["2026-12-24", "2026-12-31"]
    assert account["escalate_after"] == "0s"


def test_business_hours_shared_by_name(tmp_path):
    path = tmp_path / "config.toml"
    shared = '[calendars.office]\ntimezone = "Europe/Berlin"\nhours = "08:00-16:00"\n'
    second = ACCOUNT.replace('"work"', '"support"')
    path.write_text(
        ACCOUNT + 'business_hours = "office"\n' + second + 'business_hours = "office"\n' + shared,
        encoding="utf-8",
    )
    accounts = load_settings(path).accounts
    clocks = [plan_of(a).policy.clock for a in accounts]
    assert clocks[0] == clocks[1] and clocks[0].ranges == ((480, 960),)
    path.write_text(ACCOUNT + 'business_hours = "ofice"\n' + shared, encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"business_hours = 'ofice' names no \[calendars.ofice\] \(office\)"
    ):
        load_settings(path)
