"""Config accounts -> AccountPlans: the one place a plan's window, lookback and policy come
from, for a scan, a poll and a carried report alike."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from inboxwatch.config import DEFAULT_LOOKBACK, DEFAULT_WINDOW, Account
from inboxwatch.core.clock import BusinessHours
from inboxwatch.core.rules import Policy
from inboxwatch.core.scan import LOCAL_KNOBS, AccountPlan
from inboxwatch.core.standards import Rule, Window
from inboxwatch.standardsconfig import BusinessHoursConfig, RuleConfig, holiday_dates, hour_ranges


@dataclass(frozen=True)
class Overrides:
    """One run's changes to every plan: `scan --window --lookback/--since --include-cc`."""

    window: timedelta | None = None
    lookback: timedelta | None = None
    include_cc: bool = False


NO_OVERRIDES = Overrides()


def plan_of(account: Account, overrides: Overrides = NO_OVERRIDES) -> AccountPlan:
    """The account's plan, with one run's overrides."""
    return AccountPlan(
        name=account.name,
        addresses=tuple(account.addresses),
        folders=tuple(account.folders),
        sent_folders=tuple(account.sent_folders),
        window=overrides.window or account.window,
        lookback=overrides.lookback or account.lookback,
        followup_after=account.followup_after,
        policy=Policy(
            include_cc=account.include_cc or overrides.include_cc,
            ignore_senders=tuple(account.ignore_senders),
            ignore_subjects=tuple(re.compile(p) for p in account.ignore_subjects),
            handled_keyword=account.handled_keyword.lower(),
            closing_messages=account.closing_messages,
            team=tuple(glob.lower() for glob in account.team),
            rules=tuple(rule_of(n, r) for n, r in enumerate(account.rules, 1)),
            clock=clock_of(account.calendar({})),
            vip_from_sent=account.vip_from_sent,
            escalate_after=account.escalate_after,
        ),
    )


def rule_of(index: int, rule: RuleConfig) -> Rule:
    return Rule(
        index,
        senders=tuple(g.lower() for g in rule.senders),
        to=tuple(g.lower() for g in rule.to),
        folders=tuple(rule.folders),
        subjects=tuple(re.compile(p) for p in rule.subjects),
        window=Window.of(rule.window) if rule.window else None,
        priority=rule.priority,
        ignore=rule.ignore,
        remind=rule.remind,
    )


def clock_of(hours: BusinessHoursConfig | None) -> BusinessHours | None:
    if hours is None:
        return None
    return BusinessHours(
        hours.timezone,
        hours.weekdays,
        hour_ranges(hours.hours),
        hours.holidays,
        frozenset(hours.days_off),
        holiday_dates(hours.holidays) if hours.holidays else frozenset(),
    )


def local_plan(
    name: str,
    addresses: Sequence[str],
    folders: Sequence[str] | None,
    sent_folders: Sequence[str],
    overrides: Overrides = NO_OVERRIDES,
) -> AccountPlan:
    """A plan for mail on disk (mbox, Maildir, the demo), with the config's defaults."""
    return AccountPlan(
        name=name,
        addresses=tuple(addresses),
        folders=None if folders is None else tuple(folders),
        sent_folders=tuple(sent_folders),
        window=overrides.window or DEFAULT_WINDOW,
        followup_after=Account.model_fields["followup_after"].default,
        lookback=overrides.lookback or DEFAULT_LOOKBACK,
        policy=Policy(
            include_cc=overrides.include_cc,
            closing_messages=Account.model_fields["closing_messages"].default,
        ),
        knobs=LOCAL_KNOBS,
    )
