"""Digest periods from cron schedules, across time zones and DST changes."""

from __future__ import annotations

from datetime import UTC, datetime

from inboxwatch.periods import latest_run, next_run, period_key

WEEKDAYS = "0 8 * * 1-5"


def test_latest_and_next_run_on_weekdays():
    tuesday = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 in Berlin
    assert latest_run(WEEKDAYS, "Europe/Berlin", tuesday).isoformat() == "2026-11-24T08:00:00+01:00"
    assert next_run(WEEKDAYS, "Europe/Berlin", tuesday).isoformat() == "2026-11-25T08:00:00+01:00"
    early = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)  # 07:00 Berlin, before today's run
    assert latest_run(WEEKDAYS, "Europe/Berlin", early).day == 23
    sunday = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert latest_run(WEEKDAYS, "Europe/Berlin", sunday).day == 27  # Friday


def test_period_key_is_stable_within_a_period_and_across_dst():
    a = datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    b = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
    assert period_key(WEEKDAYS, "Europe/Berlin", a) == period_key(WEEKDAYS, "Europe/Berlin", b)
    assert period_key(WEEKDAYS, "Europe/Berlin", a) == "2026-11-24T08:00@Europe/Berlin"
    # Berlin leaves summer time on 2026-10-25: 08:00 local is 07:00 UTC before, 07:00 after.
    before = latest_run("0 8 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=UTC))
    after = latest_run("0 8 * * *", "Europe/Berlin", datetime(2026, 10, 26, 12, tzinfo=UTC))
    assert (before.astimezone(UTC).hour, after.astimezone(UTC).hour) == (6, 7)


def test_standard_cron_day_of_week_not_apschedulers():
    from inboxwatch.periods import _day_names

    assert _day_names("1-5") == "mon,tue,wed,thu,fri"
    assert _day_names("0") == _day_names("7") == "sun"
    assert _day_names("*/2") == "sun,tue,thu,sat"
    assert _day_names("mon-fri,6") == "mon-fri,sat"
    sunday_job = next_run("0 9 * * 0", "UTC", datetime(2026, 11, 24, tzinfo=UTC))
    assert sunday_job.strftime("%a %d") == "Sun 29"


def test_rare_schedules():
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert latest_run("0 9 1 1 *", "UTC", now).isoformat() == "2026-01-01T09:00:00+00:00"
    assert latest_run("*/5 * * * *", "UTC", now) == now
