"""Whether an account is read at this poll: backing off after failures, and whether its
cache can be trusted after the clock jumped or the lookback grew (the service's poller
asks each)."""

from __future__ import annotations

from datetime import datetime, timedelta

from inboxwatch.core.model import PollRecord
from inboxwatch.core.scan import AccountPlan
from inboxwatch.errors import SignInNeeded

MAX_BACKOFF = timedelta(hours=1)
# How far the clock may step back between polls unnoticed: an NTP step, a slow poll.
CLOCK_SLACK = timedelta(minutes=5)


def backing_off(record: PollRecord | None, interval: timedelta, now: datetime) -> bool:
    """After consecutive failures, wait 1, 2, 4… poll intervals (at most an hour), and at
    least as long as a throttling server asked (Microsoft 365's Suggested Backoff Time)."""
    if record is None or not record.failures or record.last_attempt is None:
        return False
    if record.error_code == SignInNeeded.exit_code:
        # Costs no request (the token file remembers the ended sign-in), and after
        # `inboxwatch auth` the account must be back at the next poll, not in an hour.
        return False
    if record.last_attempt > now + CLOCK_SLACK:
        return False  # the clock went back: a wait from the later clock would last as long
    if record.not_before is not None and now < record.not_before:
        return True
    delay = min(interval * 2 ** (record.failures - 1), MAX_BACKOFF)
    return bool(now < record.last_attempt + delay)


def clock_jump(record: PollRecord | None, plan: AccountPlan, now: datetime) -> str | None:
    """Why the cache cannot be trusted at `now`, or None. With the clock ahead, a poll ages
    every cached message out of the lookback and stores the folders as read, so once the
    clock is back an incremental poll finds nothing new and reports nothing overdue. The
    last success is kept until a poll succeeds, so a failed full read is tried again."""
    if record is None:
        return None
    success, attempt = record.last_success, record.last_attempt
    if success is not None and now < success - CLOCK_SLACK:
        return f"the clock went back from {success:%Y-%m-%d %H:%M} to {now:%Y-%m-%d %H:%M} UTC"
    if attempt is not None and now - attempt > plan.lookback:
        return (
            f"{(now - attempt).days} days passed since its last poll, more than the lookback "
            "(the clock jumped ahead, or the service was stopped that long)"
        )
    return None


def lookback_grew(record: PollRecord | None, plan: AccountPlan) -> str | None:
    """Why the cache lacks mail the lookback now holds, or None. A poll reads by UID what
    arrived since the last one (imap.changes) and trusts the cache for older mail, so
    mail older than the last lookback's start, inside a longer one now, would never be
    read. A cache with no poll noted (none yet, or a crash before it) has nothing older."""
    if record is None or record.last_success is None:
        return None
    if record.lookback is None:
        return "its cache does not say which lookback it covers (an earlier version wrote it)"
    if plan.lookback > record.lookback:
        return f"the lookback grew from {_days(record.lookback)} to {_days(plan.lookback)}"
    return None


def _days(span: timedelta) -> str:
    return f"{span.days}d" if span == timedelta(days=span.days) else str(span)
