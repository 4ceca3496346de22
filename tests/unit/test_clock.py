"""The business clock: it runs only in working hours, across weekends, holidays, DST days
and time zones either side of UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from inboxwatch.core.clock import BusinessHours
from inboxwatch.standardsconfig import holiday_dates, hour_ranges

NINE_TO_FIVE = ((9 * 60, 17 * 60),)
WEEKDAYS = frozenset(range(5))
BERLIN = BusinessHours("Europe/Berlin", WEEKDAYS, NINE_TO_FIVE)
H = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_friday_afternoon_to_monday_morning_is_two_business_hours():
    # 2026-11-27 is a Friday; Berlin is UTC+1 in winter: 16:00 local = 15:00 UTC.
    friday_4pm = utc(2026, 11, 27, 15)
    monday_10am = utc(2026, 11, 30, 9)
    assert BERLIN.between(friday_4pm, monday_10am) == 2 * H
    assert BERLIN.add(friday_4pm, 2 * H) == monday_10am
    assert BERLIN.add(friday_4pm, H) == utc(2026, 11, 27, 16)  # 17:00 local: closing time


def test_mail_at_night_starts_the_clock_at_opening_time():
    sunday_night = utc(2026, 11, 29, 22)
    assert BERLIN.add(sunday_night, 8 * H) == utc(2026, 11, 30, 16)  # Monday 17:00 local
    assert BERLIN.between(sunday_night, utc(2026, 11, 30, 8)) == timedelta(0)  # 09:00 local


def test_several_days_and_split_hours():
    lunch = BusinessHours("Europe/Berlin", WEEKDAYS, hour_ranges("09:00-12:00,13:00-17:00"))
    assert lunch.day_length() == 7 * H
    monday_9 = utc(2026, 11, 30, 8)
    assert lunch.between(monday_9, utc(2026, 12, 2, 16)) == 3 * 7 * H  # to Wednesday 17:00
    assert lunch.add(monday_9, 3 * H + timedelta(minutes=30)) == utc(2026, 11, 30, 12, 30)


def test_holidays_and_days_off_stop_the_clock():
    christmas = BusinessHours(
        "Europe/Berlin",
        WEEKDAYS,
        NINE_TO_FIVE,
        "DE-BE",
        frozenset({date(2026, 12, 24)}),
        holiday_dates("DE-BE"),
    )
    # Wednesday 23 Dec 17:00 local: the 24th is a day off, the 25th a public holiday, the
    # 26th and 27th a weekend; the next working hour is Monday the 28th.
    assert christmas.add(utc(2026, 12, 23, 16), H) == utc(2026, 12, 28, 9)
    assert christmas.between(utc(2026, 12, 23, 16), utc(2026, 12, 27, 23)) == timedelta(0)


def test_dst_days_keep_wall_clock_hours():
    # Europe/Berlin goes to summer time on 2026-03-29 (a Sunday) and back on 2026-10-25.
    # Round the clock, the spring day has 23 hours and the autumn day 25.
    always = BusinessHours("Europe/Berlin", frozenset(range(7)), ((0, 24 * 60),))
    assert always.between(utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)) == 23 * H
    assert always.between(utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)) == 25 * H
    # 09:00 local is 08:00 UTC before the change and 07:00 UTC after it.
    assert BERLIN.add(utc(2026, 3, 27, 8), 8 * H) == utc(2026, 3, 27, 16)
    assert BERLIN.add(utc(2026, 3, 30, 0), H) == utc(2026, 3, 30, 8)


def test_time_zones_either_side_of_utc():
    # Auckland (UTC+13 in December): Monday 09:00 there is Sunday 20:00 UTC.
    auckland = BusinessHours("Pacific/Auckland", WEEKDAYS, NINE_TO_FIVE)
    assert auckland.add(utc(2026, 12, 6, 12), H) == utc(2026, 12, 6, 21)
    # Los Angeles (UTC-8): Friday 17:00 there is Saturday 01:00 UTC.
    la = BusinessHours("America/Los_Angeles", WEEKDAYS, NINE_TO_FIVE)
    assert la.between(utc(2026, 12, 4, 23), utc(2026, 12, 5, 3)) == 2 * H
    assert la.add(utc(2026, 12, 5, 0), 2 * H) == utc(2026, 12, 7, 18)  # Monday 10:00 there


def test_a_calendar_without_working_time_never_comes_due():
    nothing = BusinessHours("UTC", frozenset(), NINE_TO_FIVE)
    assert nothing.add(utc(2026, 12, 1), H).year == 9999


ZONES = st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Auckland"])
MOMENTS = st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)


@settings(max_examples=200, deadline=None)
@given(ZONES, MOMENTS, st.integers(0, 20 * 24 * 60), st.integers(0, 20 * 24 * 60))
def test_business_time_never_exceeds_calendar_time_and_only_grows(zone, start, a, b):
    clock = BusinessHours(zone, WEEKDAYS, hour_ranges("08:30-12:00,13:00-18:00"))
    first, second = sorted((timedelta(minutes=a), timedelta(minutes=b)))
    early = clock.between(start, start + first)
    late = clock.between(start, start + second)
    assert timedelta(0) <= early <= first
    assert early <= late <= second
    # add() is the inverse: the moment `late` of business time has passed is no later
    # than where it was measured, and measures back to exactly `late`.
    if late:
        due = clock.add(start, late)
        assert due <= start + second
        assert clock.between(start, due) == late
