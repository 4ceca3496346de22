"""The reply standard over time: this week against the week before, per week, per rule
and per priority, judged at `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from inboxwatch.core.model import Conversation, ReplyStandard
from inboxwatch.core.trend import figures, trend

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
H = timedelta(hours=1)
D = 24 * H


def conv(days_ago: float, reply_after: float | None, window_hours: float = 24, **kw):
    since = NOW - days_ago * D
    replied = since + reply_after * H if reply_after is not None else None
    return Conversation(since, since + window_hours * H, replied, replied is not None, **kw)


def test_unanswered_conversations_count_once_their_window_has_ended():
    young = conv(0.5, None)  # 12 hours of 24: not judged yet
    old = conv(2, None)
    flagged = conv(3, None)._replace(answered=True)  # \Answered: when is unknown
    out = figures([young, old, flagged, conv(1.5, 2)], NOW)
    assert (out.conversations, out.answered, out.judged, out.within_window) == (4, 2, 2, 1)


def test_this_week_against_the_week_before_and_each_week():
    reply = ReplyStandard(
        each=[
            conv(1, 2),
            conv(2, 30),  # late
            conv(3, 5),
            conv(8, 30),
            conv(9, 40),
            conv(10, 1),
            conv(20, 1),
        ]
    )
    found = trend(reply, NOW)
    assert found.current.share_within_window() == 2 / 3
    assert found.previous.share_within_window() == 1 / 3
    assert [start for start, _ in found.weeks] == [NOW - 21 * D, NOW - 14 * D, NOW - 7 * D]
    assert [w.judged for _, w in found.weeks] == [1, 3, 3]


def test_per_rule_and_priority_in_the_configs_order():
    reply = ReplyStandard(
        each=[
            conv(1, 2, window_hours=4, rule="rules[2]", priority="high"),
            conv(8, 5, window_hours=4, rule="rules[2]", priority="high"),
            conv(1, 10, rule="rules[1]"),
            conv(1, 30),
        ]
    )
    found = trend(reply, NOW)
    assert [g.name for g in found.rules] == ["", "rules[1]", "rules[2]"]
    fast = found.rules[2]
    assert fast.current.share_within_window() == 1.0
    assert fast.previous.share_within_window() == 0.0  # 5 hours against a 4-hour window
    assert [g.name for g in found.priorities] == ["high", "normal"]
    assert found.priorities[1].current.share_within_window() == 0.5
