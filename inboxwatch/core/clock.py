"""Business time: working days and hours in a time zone, less holidays. Pure.

The clock stops outside working time: a message that arrives on Friday at 16:00
under `09:00-17:00, mon-fri` has waited one business hour on Monday at 10:00.
Working hours are local wall-clock times, so a DST change moves them with the
clock on the wall (the spans are converted to UTC day by day through zoneinfo).
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Looking further than this for working time means there is none (a calendar of holidays
# only): the wait is then treated as never reaching the window.
_HORIZON_DAYS = 3 * 366
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BusinessHours:
    """`[accounts.business_hours]`: `days` are weekday numbers (Monday 0), `ranges` minutes
    from local midnight (end exclusive; 1440 is midnight at the day's end)."""

    timezone: str
    days: frozenset[int]
    ranges: tuple[tuple[int, int], ...]
    holidays: str = ""  # the spec, for equality; `off` holds the dates
    days_off: frozenset[date] = frozenset()
    # Public holidays (the holidays package's lazily expanding calendar, or a set).
    off: Container[date] = field(default=frozenset(), compare=False, hash=False, repr=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def day_length(self) -> timedelta:
        """One working day's business time: what "1 business day" is worth."""
        return timedelta(minutes=sum(end - start for start, end in self.ranges))

    def working(self, day: date) -> bool:
        return day.weekday() in self.days and day not in self.days_off and day not in self.off

    def spans(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """The working spans of one local date, in UTC."""
        if not self.working(day):
            return
        zone = self.zone
        midnight = datetime.combine(day, time(0), zone)
        for start, end in self.ranges:
            yield _at(midnight, start, zone), _at(midnight, end, zone)

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time from `start` to `end` (zero when `end` is not later)."""
        total = timedelta(0)
        if end <= start:
            return total
        for day in _days(start, end, self.zone):
            for begin, finish in self.spans(day):
                overlap = min(finish, end) - max(begin, start)
                if overlap > timedelta(0):
                    total += overlap
        return total

    def add(self, start: datetime, amount: timedelta) -> datetime:
        """The moment `amount` of business time has passed since `start`."""
        day = start.astimezone(self.zone).date()
        for _ in range(_HORIZON_DAYS):
            for opens, finish in self.spans(day):
                begin = max(opens, start)
                if finish <= begin:
                    continue
                if amount <= finish - begin:
                    return begin + amount
                amount -= finish - begin
            day += timedelta(days=1)
        return FAR_FUTURE


def _at(midnight: datetime, minutes: int, zone: ZoneInfo) -> datetime:
    """Local wall-clock `minutes` after midnight, in UTC. Wall time, not elapsed time: on
    a DST day 09:00 is still 09:00. A time the clock skips (02:30 in spring) is read with
    the offset before the change (PEP 495, fold=0)."""
    if minutes >= 24 * 60:
        local = datetime.combine(midnight.date() + timedelta(days=1), time(0), zone)
    else:
        local = midnight.replace(hour=minutes // 60, minute=minutes % 60)
    return local.astimezone(UTC)


def _days(start: datetime, end: datetime, zone: ZoneInfo) -> Iterator[date]:
    day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    while day <= last:
        yield day
        day += timedelta(days=1)
