"""The service's unit of work: one poll of every account, then the digest if one is due.

`poll_once` is what `inboxwatch run` schedules and `run --once` calls; `now`
is a parameter, so tests drive it with any clock. Whether a digest is due is
decided from our own ledger, not from the scheduler's memory: the most recent
time on `digest.schedule` has passed and no digest for that period was sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from inboxwatch.app import AccountPlan, Sender, digest_message, run_scan
from inboxwatch.config import Account, Settings, env_password_name, resolve_secret
from inboxwatch.errors import InboxwatchError
from inboxwatch.model import Report
from inboxwatch.periods import latest_run, period_key
from inboxwatch.source import MailSource
from inboxwatch.state import StateStore, read_polls
from inboxwatch.sync import SyncingSource

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(hours=1)


@dataclass
class PollResult:
    report: Report
    fetched: int
    seconds: float
    digest: str | None  # the period whose digest was sent in this poll

    def line(self) -> str:
        failed = {e.account for e in self.report.errors if e.exit_code > 1}
        text = (
            f"poll: {len(self.report.accounts)} account(s) read, {self.fetched} message(s) "
            f"fetched, {len(self.report.overdue)} overdue, {self.seconds:.2f}s"
        )
        if failed:
            text += f"; failed: {', '.join(sorted(failed))}"
        return text + (f"; digest sent for {self.digest}" if self.digest else "")


def _backing_off(store: StateStore, account: str, interval: timedelta, now: datetime) -> bool:
    """After consecutive failures, wait 1, 2, 4… poll intervals (at most an hour)."""
    record = store.polls().get(account)
    if record is None or not record.failures or record.last_attempt is None:
        return False
    delay = min(interval * 2 ** (record.failures - 1), MAX_BACKOFF)
    return bool(now < record.last_attempt + delay)


def _source_factory(
    account: Account, store: StateStore, stop: threading.Event, opened: dict[str, SyncingSource]
) -> Callable[[], MailSource]:
    def factory() -> MailSource:
        from inboxwatch.imap_source import ImapSource

        password = resolve_secret(
            account, f"accounts[{account.name}]", env_password_name(account.name)
        )
        source = SyncingSource(ImapSource(account, password), store, account.name, stop)
        opened[account.name] = source
        return source

    return factory


def poll_once(
    settings: Settings,
    store: StateStore,
    sender: Sender,
    now: datetime,
    stop: threading.Event | None = None,
) -> PollResult:
    """Poll every account (incrementally), commit what was read, send the digest if due."""
    stop = stop or threading.Event()
    started = time.monotonic()
    opened: dict[str, SyncingSource] = {}
    interval = settings.service.poll_interval
    accounts = [a for a in settings.accounts if not _backing_off(store, a.name, interval, now)]
    jobs = [
        (AccountPlan.from_account(a), _source_factory(a, store, stop, opened)) for a in accounts
    ]
    report = run_scan(jobs, now, now)
    read = {summary.name for summary in report.accounts}
    for account in accounts:
        if account.name in read:
            opened[account.name].commit()
            store.record_poll(account.name, now)
        else:
            error = next(e for e in report.errors if e.account == account.name)
            store.record_poll(account.name, now, error.message, error.exit_code)
            log.warning("%s: %s", account.name, error.message)
    fetched = sum(source.fetched for source in opened.values())
    period = send_digest_if_due(settings, store, report, sender, now)
    return PollResult(report, fetched, time.monotonic() - started, period)


def send_digest_if_due(
    settings: Settings, store: StateStore, report: Report, sender: Sender, now: datetime
) -> str | None:
    """At most one digest per period: pending -> sending -> sent, in the ledger.

    A crash between "sending" and "sent" resends with the same Message-ID
    (at-least-once); a digest the SMTP server did not accept stays pending.
    """
    config = settings.digest
    if not config.to or latest_run(config.schedule, config.timezone, now) is None:
        return None
    period = period_key(config.schedule, config.timezone, now)
    entry = store.digest(period)
    if entry is not None and entry[0] in ("sent", "empty"):
        return None
    if not report.accounts:
        return None  # no account could be read: wait for a poll that sees mail
    message = digest_message(report, config, now)
    if message is None:
        store.mark_digest(period, "empty", "", now)
        return None
    store.mark_digest(period, "sending", str(message["Message-ID"]), now)
    try:
        sender.send(message)
    except InboxwatchError:
        store.mark_digest(period, "pending", str(message["Message-ID"]), now)
        raise
    store.mark_digest(period, "sent", str(message["Message-ID"]), now)
    log.info("digest for %s sent to %s", period, message["To"])
    return period


def health(settings: Settings, now: datetime) -> tuple[bool, str]:
    """Every account polled successfully within three poll intervals?"""
    polls = read_polls(settings.state.path_resolved())
    limit = settings.service.poll_interval * 3
    problems = []
    for account in settings.accounts:
        record = polls.get(account.name)
        if record is None or record.last_success is None:
            problems.append(f"{account.name}: no successful poll yet")
        elif now - record.last_success > limit:
            why = f" (last error: {record.last_error})" if record.last_error else ""
            problems.append(
                f"{account.name}: last successful poll "
                f"{record.last_success:%Y-%m-%d %H:%M} UTC{why}"
            )
    if problems:
        return False, "; ".join(problems)
    return True, f"{len(settings.accounts)} account(s) polled within {limit}"
