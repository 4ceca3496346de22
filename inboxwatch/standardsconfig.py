"""`[[accounts.rules]]` and `[accounts.business_hours]` as the config writes them, checked
at load: a bad glob, regex, window, time zone or holiday calendar names its rule."""

from __future__ import annotations

import re
from collections.abc import Container
from datetime import date, timedelta
from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from inboxwatch.durations import duration_or_zero, parse_window

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _glob(value: str) -> str:
    """fnmatch takes any text; what it would read other than meant is refused."""
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a glob: no spaces, not empty")
    if value.count("[") != value.count("]"):
        raise ValueError(f"{value!r} has an unclosed [ ] set")
    return value


def regex(value: str) -> str:
    """A regular expression that compiles (`ignore_subjects`, a rule's `subjects`)."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from exc
    return value


def _window(value: object) -> str:
    parse_window(value)
    return str(value).strip()


Glob = Annotated[str, BeforeValidator(lambda v: _glob(str(v).strip()))]
Regex = Annotated[str, BeforeValidator(lambda v: regex(str(v)))]


class RuleConfig(BaseModel):
    """One rule: who or what it matches, and what it sets. The first rule that matches a
    message decides; the criteria given must all match, any entry of a list will do."""

    model_config = _STRICT

    senders: list[Glob] = Field(default=[], alias="from")
    to: list[Glob] = []
    folders: list[Glob] = []
    subjects: list[Regex] = []
    window: Annotated[str, BeforeValidator(_window)] = ""
    priority: Literal["high", "normal", "low", ""] = ""
    ignore: bool = False
    remind: Literal["once", "daily", ""] = ""

    @model_validator(mode="after")
    def _does_something(self) -> RuleConfig:
        if self.ignore and (self.window or self.priority or self.remind):
            raise ValueError("ignore = true leaves the mail out: drop window, priority, remind")
        if not (self.ignore or self.window or self.priority or self.remind):
            raise ValueError("the rule sets nothing: give window, priority, remind or ignore")
        return self

    @property
    def business(self) -> bool:
        return bool(self.window) and parse_window(self.window)[1] != ""


def zone_name(name: str) -> str:
    """An IANA time zone this machine knows (business hours, the digest's schedule)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
        ) from None
    return name


def _day_set(text: str) -> frozenset[int]:
    """`mon-fri`, `sun-thu`, `mon,wed,fri` -> weekday numbers (Monday 0)."""
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ValueError(f"{text!r}: days are mon..sun, as 'mon-fri' or 'mon,wed,fri'")
        start, end = _DAYS.index(first), _DAYS.index(last or first)
        days.update(n % 7 for n in range(start, end + 1 + (7 if end < start else 0)))
    return frozenset(days)


def _minutes(text: str) -> int:
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"{text!r} is not a time: write 09:00")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > 24 * 60:
        raise ValueError(f"{text!r} is not a time of day")
    return value


def hour_ranges(text: str) -> tuple[tuple[int, int], ...]:
    """`09:00-12:00,13:00-17:00` -> minutes from midnight, in order, not overlapping."""
    ranges = []
    for part in text.replace(" ", "").split(","):
        start, dash, end = part.partition("-")
        if not dash:
            raise ValueError(f"{part!r}: write hours as '09:00-17:00'")
        ranges.append((_minutes(start), _minutes(end)))
    for n, (opens, closes) in enumerate(ranges):
        if closes <= opens or (n and opens < ranges[n - 1][1]):
            raise ValueError(f"{text!r}: ranges must run forward, in order, not overlapping")
    return tuple(ranges)


@lru_cache(maxsize=32)
def holiday_dates(spec: str) -> Container[date]:
    """Public holidays of `DE` or `DE-BE` (country[-subdivision]), from the holidays
    package (an optional extra); the calendar adds years as they are asked about. Made
    once per spec: checking the config and building the account's clock share it."""
    try:
        import holidays
    except ImportError:
        raise ValueError(
            f"holidays = {spec!r} needs the holidays package: pip install 'inboxwatch[holidays]'"
        ) from None
    country, _, subdivision = spec.partition("-")
    try:
        found: Container[date] = holidays.country_holidays(country, subdiv=subdivision or None)
    except NotImplementedError as exc:
        raise ValueError(f"holidays = {spec!r}: {exc}") from None
    return found


class BusinessHoursConfig(BaseModel):
    """When the clock runs for windows written in business time."""

    model_config = _STRICT

    timezone: str
    days: str = "mon-fri"
    hours: str = "09:00-17:00"  # several ranges: "09:00-12:00,13:00-17:00"
    holidays: str = ""  # country[-subdivision]: "DE-BE", "US-CA", "GB-SCT"
    days_off: list[date] = []

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        return zone_name(name)

    @field_validator("days")
    @classmethod
    def _days(cls, text: str) -> str:
        _day_set(text)
        return text

    @field_validator("hours")
    @classmethod
    def _hours(cls, text: str) -> str:
        hour_ranges(text)
        return text

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, spec: str) -> str:
        if spec:
            holiday_dates(spec)
        return spec

    @property
    def weekdays(self) -> frozenset[int]:
        return _day_set(self.days)


OrZero = Annotated[timedelta, BeforeValidator(duration_or_zero)]  # "0": off


class Standards(BaseModel):
    """An account's reply standard beyond its `window` (config.Account inherits it)."""

    model_config = _STRICT

    # Your own message nobody answered for this long is listed (`awaiting`); 0: never.
    followup_after: OrZero = timedelta(days=3)
    # Teammates (addresses or globs): their reply to the sender answers for you too.
    team: list[str] = []
    # Per sender, recipient, folder, subject: the first rule that matches decides.
    rules: list[RuleConfig] = []
    # A table of its own, or the name of one of `[calendars]`, shared by several accounts.
    business_hours: BusinessHoursConfig | str | None = None
    vip_from_sent: bool = False  # people you wrote to first (90 days) are priority high
    # Overdue this much longer than its window: listed first in the digest; 0: never.
    escalate_after: OrZero = timedelta(0)

    @model_validator(mode="after")
    def _business_rules(self) -> Standards:
        for n, rule in enumerate(self.rules, 1):
            if rule.business and self.business_hours is None:
                raise ValueError(
                    f"rules[{n}].window {rule.window!r} is business time: "
                    "add [accounts.business_hours] (see config.example.toml)"
                )
        return self

    def calendar(self, calendars: dict[str, BusinessHoursConfig]) -> BusinessHoursConfig | None:
        """Its business hours, a shared calendar's by name resolved (Settings checks it)."""
        hours = self.business_hours
        if isinstance(hours, str):
            if hours not in calendars:
                known = ", ".join(sorted(calendars)) or "none is defined"
                raise ValueError(
                    f"business_hours = {hours!r} names no [calendars.{hours}] ({known})"
                )
            return calendars[hours]
        return hours
