"""How well the reply standard is kept, and is it getting better (issue 19, item 6): the
lookback's conversations cut into weeks, rules and priorities. Pure: `now` is a parameter."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from inboxwatch.core.model import Conversation, ReplyStandard
from inboxwatch.core.standards import PRIORITIES

PERIOD = timedelta(days=7)  # "this week, up from last week"
CHART_WEEKS = 8


def figures(conversations: Iterable[Conversation], now: datetime) -> ReplyStandard:
    """The reply standard of these conversations as judged at `now`: an unanswered one
    counts once its window has ended."""
    out = ReplyStandard()
    for c in conversations:
        open_until = out.take(c)
        out.judged += open_until is not None and now > open_until
    return out


@dataclass(frozen=True)
class Compared:
    """One group's figures for the last PERIOD and the one before it."""

    name: str
    current: ReplyStandard
    previous: ReplyStandard


@dataclass(frozen=True)
class Trend:
    current: ReplyStandard  # conversations begun in the last PERIOD
    previous: ReplyStandard  # ... in the PERIOD before
    weeks: tuple[tuple[datetime, ReplyStandard], ...]  # oldest first, each week's start
    rules: tuple[Compared, ...]  # per rule, in the config's order; "" is the account's window
    priorities: tuple[Compared, ...]


def _span(each: Sequence[Conversation], now: datetime, back: int) -> list[Conversation]:
    """Begun in the PERIOD `back` periods before the current one (0: the current)."""
    end = now - back * PERIOD
    return [c for c in each if end - PERIOD < c.since <= end]


def _compare(
    each: Sequence[Conversation], now: datetime, key: Callable[[Conversation], str]
) -> list[Compared]:
    groups: dict[str, list[Conversation]] = {}
    for c in each:
        groups.setdefault(key(c), []).append(c)
    return [
        Compared(name, figures(_span(items, now, 0), now), figures(_span(items, now, 1), now))
        for name, items in groups.items()
    ]


def trend(reply: ReplyStandard, now: datetime) -> Trend:
    """The figures per week (back to the week of the oldest conversation read, at most
    CHART_WEEKS), and this week against the last per rule and per priority."""
    each = reply.each
    oldest = min((c.since for c in each), default=now)
    count = max(1, min(CHART_WEEKS, -(-(now - oldest) // PERIOD)))  # the oldest in, in part
    weeks = tuple(
        (now - (back + 1) * PERIOD, figures(_span(each, now, back), now))
        for back in reversed(range(count))
    )
    rules = sorted(_compare(each, now, lambda c: c.rule), key=lambda g: _rule_order(g.name))
    priorities = sorted(
        _compare(each, now, lambda c: c.priority), key=lambda g: PRIORITIES.index(g.name)
    )
    # This week and the one before are the chart's last two (with one week in the chart,
    # no conversation is older than it: the week before is empty).
    previous = weeks[-2][1] if len(weeks) > 1 else ReplyStandard()
    return Trend(
        weeks[-1][1],
        previous,
        weeks,
        tuple(rules),
        tuple(priorities),
    )


def _rule_order(label: str) -> int:
    """`rules[3]` -> 3; the account's window ("") first."""
    return int(label.removeprefix("rules[").removesuffix("]")) if label else 0
