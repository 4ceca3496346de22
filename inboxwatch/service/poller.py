"""The service's unit of work: one poll of every account, then the digest if one is due.

`poll_once` is what `inboxwatch run` schedules and `run --once` calls; `now`
is a parameter, so tests drive it with any clock. Whether a digest is due is
decided from our own ledger, not from the scheduler's memory: the most recent
time on `digest.schedule` has passed and no digest for that period was sent.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from inboxwatch.store import lastreport
from inboxwatch.core.scan import AccountPlan, Sender, digest_message, run_scan
from inboxwatch.config import Account, Settings, env_password_name, resolve_secret
from inboxwatch.errors import AuthError, InboxwatchError, ServerError
from inboxwatch.imap.source import ImapSource
from inboxwatch.core.model import Finding, Report, ReportError
from inboxwatch.periods import latest_run, period_key
from inboxwatch.core.ports import MailSource
from inboxwatch.store.state import PollRecord, StateStore, read_polls
from inboxwatch.service.sync import MemoryCache, SyncingSource

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


def _backing_off(record: PollRecord | None, interval: timedelta, now: datetime) -> bool:
    """After consecutive failures, wait 1, 2, 4… poll intervals (at most an hour), and at
    least as long as a throttling server asked (Microsoft 365's Suggested Backoff Time)."""
    if record is None or not record.failures or record.last_attempt is None:
        return False
    if record.not_before is not None and now < record.not_before:
        return True
    delay = min(interval * 2 ** (record.failures - 1), MAX_BACKOFF)
    return bool(now < record.last_attempt + delay)


def fingerprint(account: Account) -> str:
    """Changes when the account's config or password does (held in memory only)."""
    try:
        secret = resolve_secret(account, "", env_password_name(account.name))
    except InboxwatchError:
        secret = ""
    text = account.model_dump_json() + "\0" + secret
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class AuthBlock:
    """A login that failed: not retried (no retry storm) until config or password change."""

    fingerprint: str
    message: str


def _skipped(
    settings: Settings, store: StateStore, now: datetime, blocked: dict[str, AuthBlock]
) -> list[ReportError]:
    """Accounts left out of this poll, each with the reason the report and digest show."""
    interval = settings.service.poll_interval
    polls = store.polls()
    skipped = []
    for account in settings.accounts:
        record = polls.get(account.name)
        block = blocked.get(account.name)
        if block is not None and block.fingerprint == fingerprint(account):
            message = f"{block.message} (not retried until the password or config changes)"
            skipped.append(ReportError(account.name, "auth", message, AuthError.exit_code))
        elif record is not None and _backing_off(record, interval, now):
            message = f"skipped while backing off after {record.failures} failed poll(s): "
            skipped.append(
                ReportError(
                    account.name,
                    "connection",
                    message + str(record.last_error),
                    ServerError.exit_code,
                )
            )
    return skipped


def _source_factory(
    account: Account,
    store: StateStore,
    stop: threading.Event,
    opened: dict[str, SyncingSource],
    memory: MemoryCache | None,
    sessions: dict[str, ImapSource],
) -> Callable[[], MailSource]:
    def factory() -> MailSource:
        inner = sessions.pop(account.name, None)
        if inner is None:
            password = resolve_secret(
                account, f"accounts[{account.name}]", env_password_name(account.name)
            )
            inner = ImapSource(account, password)
        source = SyncingSource(inner, store, account.name, stop, memory)
        opened[account.name] = source
        return source

    return factory


def poll_once(
    settings: Settings,
    store: StateStore,
    sender: Sender,
    now: datetime,
    stop: threading.Event | None = None,
    blocked: dict[str, AuthBlock] | None = None,
    previous: Report | None = None,
    memory: MemoryCache | None = None,
    keep_report: bool = False,
) -> PollResult:
    """Poll every account (incrementally), commit what was read, send the digest if due.

    `blocked` (kept by the caller across polls) holds accounts whose login failed;
    `previous`, the last poll's report: when no folder changed and no digest is due, it
    is carried forward in time instead of re-reading the cache; `memory`, the parsed
    messages a running service keeps. `keep_report` (`run --once`, a process per poll):
    the report is kept in the state file, and the one kept before serves as `previous`.
    A running service reads everything at its first poll instead, into `memory`, so that
    its polls after a change redo only what changed.
    """
    stop = stop or threading.Event()
    blocked = {} if blocked is None else blocked
    started = time.monotonic()
    sessions: dict[str, ImapSource] = {}  # logged in by the quick check, for the poll
    if keep_report and previous is None:
        previous = _stored_report(settings, store)
    if previous is not None and _carried(settings, store, previous, now, sessions):
        return PollResult(advance(previous, settings, now), 0, time.monotonic() - started, None)
    opened: dict[str, SyncingSource] = {}
    skipped = _skipped(settings, store, now, blocked)
    left_out = {e.account for e in skipped}
    accounts = [a for a in settings.accounts if a.name not in left_out]
    jobs = [
        (AccountPlan.from_account(a), _source_factory(a, store, stop, opened, memory, sessions))
        for a in accounts
    ]
    try:
        report = run_scan(jobs, now, now, memos=memory.scans if memory is not None else None)
    finally:
        for session in sessions.values():  # an account left out of this poll
            session.close()
    report.errors.extend(skipped)
    read = {summary.name for summary in report.accounts}
    for account in accounts:
        if account.name in read:
            opened[account.name].commit()
            store.record_poll(account.name, now)
        else:
            _record_failure(store, account, report, now, blocked)
    fetched = sum(source.fetched for source in opened.values())
    period = send_digest_if_due(settings, store, report, sender, now)
    if keep_report and not report.errors:
        store.save_report(lastreport.fingerprint(settings), lastreport.encode(report))
    return PollResult(report, fetched, time.monotonic() - started, period)


def _stored_report(settings: Settings, store: StateStore) -> Report | None:
    """The report a `run --once` stored, if the settings it was made with are these."""
    text = store.last_report(lastreport.fingerprint(settings))
    if text is None:
        return None
    try:
        return lastreport.decode(text)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        log.info("stored report unreadable (%s); reading the cache", exc)
        return None


def _carried(
    settings: Settings,
    store: StateStore,
    previous: Report,
    now: datetime,
    sessions: dict[str, ImapSource],
) -> bool:
    """True (and the poll recorded) when no folder changed and no digest is due, so the
    previous report only needs moving forward in time."""
    if previous.errors or digest_due(settings, store, now):
        return False
    try:
        if not unchanged(settings, store, previous, sessions):
            return False
    except InboxwatchError as exc:
        log.info("quick check failed (%s); full poll", exc)
        return False
    for account in settings.accounts:
        store.record_poll(account.name, now)
    return True


def _record_failure(
    store: StateStore,
    account: Account,
    report: Report,
    now: datetime,
    blocked: dict[str, AuthBlock],
) -> None:
    error = next(e for e in report.errors if e.account == account.name)
    wait = now + timedelta(seconds=error.retry_after) if error.retry_after else None
    store.record_poll(account.name, now, error.message, error.exit_code, wait)
    if error.kind == "auth":
        blocked[account.name] = AuthBlock(fingerprint(account), error.message)
        log.error(
            "%s: %s; not retrying until its password or config changes", account.name, error.message
        )
    else:
        log.warning("%s: %s", account.name, error.message)


def digest_due(settings: Settings, store: StateStore, now: datetime) -> bool:
    config = settings.digest
    if not config.to or latest_run(config.schedule, config.timezone, now) is None:
        return False
    entry = store.digest(period_key(config.schedule, config.timezone, now))
    return entry is None or entry[0] not in ("sent", "empty")


def unchanged(
    settings: Settings,
    store: StateStore,
    previous: Report,
    opened: dict[str, ImapSource] | None = None,
) -> bool:
    """Every folder the previous poll read reports the same UIDVALIDITY, UIDNEXT, message
    count and HIGHESTMODSEQ: one EXAMINE each, no header or flag fetched. When something
    changed, the sessions are left in `opened` for the poll that follows (one login)."""
    folders = {a.name: (*a.folders, *a.sent_folders) for a in previous.accounts}
    if set(folders) != {a.name for a in settings.accounts}:
        return False
    sessions: dict[str, ImapSource] = {}
    try:
        for account in settings.accounts:
            source = sessions[account.name] = ImapSource(
                account,
                resolve_secret(
                    account, f"accounts[{account.name}]", env_password_name(account.name)
                ),
            )
            for folder in folders[account.name]:
                if not source.examine(folder).unchanged_since(store.folder(account.name, folder)):
                    if opened is not None:
                        opened.update(sessions)
                        sessions = {}
                    return False
        return True
    finally:
        for source in sessions.values():
            source.close()


def advance(previous: Report, settings: Settings, now: datetime) -> Report:
    """The previous poll's report at a later `now`, when no mail changed: waits grow, and
    threads that crossed their window move from waiting to overdue. The reply standard
    stays as of the last read; it is only shown in a digest, and a poll with a digest
    due always reads (_carried)."""
    windows = {a.name: a.window for a in settings.accounts}
    lookbacks = {a.name: a.lookback for a in settings.accounts}
    overdue: list[Finding] = [
        f for f in previous.overdue if f.waiting_since >= now - lookbacks[f.account]
    ]  # still overdue, unless aged out of the lookback
    waiting: list[Finding] = []
    for item in previous.waiting:  # only these can change: crossing their window
        (overdue if now - item.waiting_since > windows[item.account] else waiting).append(item)
    overdue.sort(key=lambda f: (f.waiting_since, f.account, f.thread_id))
    stats = replace(previous.stats, overdue=len(overdue), pending=len(waiting))
    return Report(
        now, now, previous.window, previous.accounts, overdue, waiting, stats, previous.errors
    )


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
