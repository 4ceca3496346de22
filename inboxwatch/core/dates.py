"""Dates as RFC 5322 (the Date header) and RFC 3501 (INTERNALDATE) write them, the fast way."""

from __future__ import annotations

from datetime import UTC, datetime

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: f"{n:02d}" for n, m in enumerate(MONTHS, 1)}


def iso_datetime(day: str, mon: str, year: str, clock: str, hours: str, minutes: str) -> datetime:
    """A date's parts as RFC 5322 and RFC 3501 write them (`Nov`, `09:00:00`, `+01`, `00`),
    in UTC; raises KeyError, ValueError or OverflowError for an impossible one."""
    # As ISO 8601 text: the C parser is ~2x faster than building the date field by field.
    iso = f"{year}-{_MONTHS[mon]}-{day.strip():0>2}T{clock}{hours}:{minutes}"
    return datetime.fromisoformat(iso).astimezone(UTC)
