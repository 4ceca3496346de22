"""Durations as the config writes them: `90m`, `24h`, `2d`, `1w`, `1h30m`, and back."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_duration(value: object) -> timedelta:
    """`90m`, `24h`, `2d`, `1w`, `1h30m` -> timedelta."""
    if isinstance(value, timedelta):
        return value
    text = str(value).strip().lower()
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise ValueError(f"{value!r} is not a duration; use a number and a unit: 90m, 24h, 2d, 1w")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    return timedelta(seconds=seconds)


_BUSINESS = re.compile(r"^(\d+(?:\.\d+)?)\s*business\s+(hour|day)s?$")


def parse_window(value: object) -> tuple[timedelta, str]:
    """A reply window: `24h`, `2d` (calendar time) -> (length, ""); `8 business hours`,
    `2 business days` -> (8 hours, "hours"), (2 days, "days"), counted on a business clock."""
    text = str(value).strip().lower()
    found = _BUSINESS.match(text)
    if found is None:
        if "business" in text:
            raise ValueError(
                f"{value!r}: write business time as '8 business hours' or '2 business days'"
            )
        return parse_duration(value), ""
    amount = float(found.group(1))
    if amount <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    unit = found.group(2)
    return timedelta(**{f"{unit}s": amount}), f"{unit}s"


def duration_or_zero(value: object) -> timedelta:
    """A duration, or 0 for "off"."""
    return timedelta(0) if str(value).strip() in ("0", "0s") else parse_duration(value)


def format_duration(value: timedelta) -> str:
    """The config's own notation back: 30s, 90m, 24h, 30d, 1w (`check` shows the config)."""
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{seconds / _UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"
