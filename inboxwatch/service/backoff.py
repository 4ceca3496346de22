"""Whether an account is read at this poll: backing off after failures, a refused login
(not retried until something changes), and whether its cache can be trusted after the
clock jumped, the lookback grew, the account was pointed at another mailbox or the
parsers changed (the service's poller asks each)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from inboxwatch.auth.refresh import account_tokens
from inboxwatch.config import Account, account_password
from inboxwatch.core.generation import PARSERS
from inboxwatch.core.model import Coverage, PollRecord
from inboxwatch.core.scan import AccountPlan
from inboxwatch.errors import InboxwatchError, SignInNeeded

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


def coverage(account: Account, plan: AccountPlan) -> Coverage:
    """What a poll of the account reads: its mailbox, by a digest of where it is (an
    account renamed in place keeps its cache; one pointed elsewhere does not), how far
    back, and with which parsers."""
    where = f"{account.username}\0{account.host}\0{account.port}"
    return Coverage(hashlib.sha256(where.encode()).hexdigest()[:32], plan.lookback, PARSERS)


def other_mailbox(record: PollRecord | None, wanted: Coverage) -> bool:
    """Whether the account's cache may be of another mailbox than the one `wanted`: its
    host, port or user name changed, or an earlier version did not note them."""
    if record is None or record.last_success is None:
        return False  # nothing cached, or a crash before the first poll was noted
    return record.covers is None or record.covers.mailbox != wanted.mailbox


def other_parsers(record: PollRecord | None, wanted: Coverage) -> bool:
    """Whether other parsers (another version's, or another Python's) read the cache."""
    had = None if record is None else record.covers
    return had is not None and had.parsed != wanted.parsed


def stale_details(record: PollRecord | None, wanted: Coverage) -> bool:
    """Whether what was read of the account's bodies is to be dropped before it is read
    in full: it may be another mailbox's, or other parsers read it."""
    return other_mailbox(record, wanted) or other_parsers(record, wanted)


def cache_short(record: PollRecord | None, wanted: Coverage) -> str | None:
    """Why the account's cache does not hold what a poll `wanted`, or None.

    A poll reads by UID what arrived since the last one (imap.changes) and trusts the
    cache for the rest. So after the lookback grew, mail older than the last one's start
    was never read; and after host or user name changed, the other mailbox's messages
    were taken for this one's wherever its UIDVALIDITY matched (Dovecot's is the second
    the folder was made: two mailboxes made together share it)."""
    had = None if record is None else record.covers
    if other_mailbox(record, wanted):
        if had is None:
            return "its cache does not say what it holds (an earlier version wrote it)"
        return "its host, port or username changed, so its cache is of another mailbox"
    if had is not None and wanted.lookback > had.lookback:
        return f"the lookback grew from {_days(had.lookback)} to {_days(wanted.lookback)}"
    if had is not None and other_parsers(record, wanted):
        # A message the old parsers misread keeps its fields, and one they could not read
        # is never fetched again (store/failures.py), until the cache is read again.
        return (
            f"its cache was read by other parsers (generation {had.parsed}; these are "
            f"generation {wanted.parsed})"
        )
    return None


def _days(span: timedelta) -> str:
    # durations.format_duration says it in the config's notation, but the architecture
    # table keeps `service` from importing `durations` (tests/unit/test_architecture.py).
    return f"{span.days}d" if span == timedelta(days=span.days) else str(span)


def fingerprint(account: Account, tokens: Path) -> str:
    """Changes when the account's config, password or OAuth sign-in does (held in memory
    only): a login refused with a fresh token is retried after `inboxwatch auth`."""
    try:
        if account.auth == "oauth2":
            signed = account_tokens(account, tokens).file.read()
            secret = str(signed.signed_in_at) if signed else ""
        else:
            secret = account_password(account)
    except InboxwatchError:
        secret = ""
    text = account.model_dump_json() + "\0" + secret
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class AuthBlock:
    """A login that failed: not retried (no retry storm) until config or password change."""

    fingerprint: str
    message: str
