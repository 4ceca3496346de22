"""Digest periods from the cron schedule, in the owner's time zone. Pure: `now` is a parameter.

A period starts at a scheduled time and ends at the next one; the digest of a
period is identified by its start (e.g. `2026-11-24T08:00@Europe/Berlin`), so a
resend in the same period carries the same Message-ID.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

# Look back this far for the latest scheduled time (a yearly cron needs the last step).
_SPANS = (timedelta(days=1), timedelta(days=8), timedelta(days=32), timedelta(days=367))


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day_names(field: str) -> str:
    """Standard cron day-of-week (0 or 7 = Sunday) as APScheduler day names.

    APScheduler 3.x's from_crontab counts 0 = Monday, so "1-5" would mean
    Tuesday to Saturday (agronholm/apscheduler#286, fixed only in 4.x).
    Numbers, ranges and steps are expanded to names; names pass through.
    """
    out: list[str] = []
    for part in field.split(","):
        spec, _, step_text = part.partition("/")
        if not (spec == "*" or spec.replace("-", "").isdigit()):
            out.append(part)  # names (mon-fri) mean the same in both
            continue
        low, _, high = ("0-6" if spec == "*" else spec).partition("-")
        first, last = int(low), int(high or (6 if step_text else low))
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last):
            raise ValueError(f"day of week {part!r} is out of range 0-7")
        out.extend(_DAY_NAMES[n % 7] for n in range(first, last + 1, int(step_text or 1)))
    return ",".join(dict.fromkeys(out))


def cron_trigger(schedule: str, timezone: str) -> CronTrigger:
    """A CronTrigger with standard crontab semantics for the day of week."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_day_names(weekday),
        timezone=ZoneInfo(timezone),
    )


_trigger = cron_trigger


def next_run(schedule: str, timezone: str, now: datetime) -> datetime | None:
    """The first scheduled time strictly after `now`."""
    trigger = _trigger(schedule, timezone)
    fire: datetime | None = trigger.get_next_fire_time(None, now + timedelta(microseconds=1))
    return fire


def latest_run(schedule: str, timezone: str, now: datetime) -> datetime | None:
    """The most recent scheduled time at or before `now` (None if none within a year)."""
    trigger = _trigger(schedule, timezone)
    for span in _SPANS:
        fire: datetime | None = trigger.get_next_fire_time(None, now - span)
        latest = None
        while fire is not None and fire <= now:
            latest = fire
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if latest is not None:
            return latest
    return None


def period_key(schedule: str, timezone: str, now: datetime) -> str:
    """`2026-11-24T08:00@Europe/Berlin`: the period `now` falls in (its start, local time)."""
    start = latest_run(schedule, timezone, now) or now.astimezone(ZoneInfo(timezone))
    return f"{start.astimezone(ZoneInfo(timezone)):%Y-%m-%dT%H:%M}@{timezone}"
