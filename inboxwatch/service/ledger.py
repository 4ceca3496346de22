"""The digest ledger: at most one digest per period of `digest.schedule` and recipients,
decided from our own state, not from the scheduler's memory (a restart or a missed run
changes nothing)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from inboxwatch.config import Account, Digest
from inboxwatch.core.model import Report
from inboxwatch.core.ports import Sender, StateStore
from inboxwatch.core.reminders import listed, reminding
from inboxwatch.errors import InboxwatchError, StateError
from inboxwatch.periods import latest_run, period_key

log = logging.getLogger(__name__)
T = TypeVar("T")
Team = tuple[Digest, Sequence[str]]  # a [[digests]] entry: Settings.team_digests
R = TypeVar("R")
_DONE = ("sent", "empty")


@dataclass(frozen=True)
class DigestGroup:
    """One digest: its recipients (in `config.to`) and the accounts it covers."""

    config: Digest
    accounts: tuple[str, ...]
    # "" for the digest to `digest.to` (its ledger rows keep the bare period, as before
    # `digest_to` existed); else the recipients, which tell its ledger rows apart.
    key: str
    sender: Sender | None = None  # its own way out (Apprise), else the service's SMTP

    @property
    def recipients(self) -> str:
        """Whom this digest goes to, as a log line or the command line says it."""
        return "notification service" if self.sender else ", ".join(self.config.to)

    def part(self, report: Report) -> Report:
        """What of `report` this digest shows."""
        if {a.name for a in report.accounts} | {e.account for e in report.errors} <= set(
            self.accounts
        ):
            return report
        return report.only(self.accounts)


def digest_groups(
    digest: Digest, accounts: Sequence[Account], teams: Sequence[Team] = ()
) -> list[DigestGroup]:
    """A digest per set of recipients: an account's `digest_to`, else `digest.to` (an
    account with neither is in none); and each team digest (`[[digests]]`) of the
    accounts it names, on its own schedule."""
    recipients: dict[tuple[str, ...], list[str]] = {}
    for account in accounts:
        to = tuple(account.digest_to or digest.to)
        if to:
            recipients.setdefault(to, []).append(account.name)
    main = tuple(digest.to)
    groups = [
        DigestGroup(digest, tuple(names), "")
        if to == main
        else DigestGroup(digest.model_copy(update={"to": list(to)}), tuple(names), ", ".join(to))
        for to, names in recipients.items()
    ]
    present = {a.name for a in accounts}
    for config, names in teams:
        chosen = tuple(n for n in names if n in present)
        if chosen:  # its ledger rows: the recipients and the accounts (two teams, one lead)
            key = f"{', '.join(config.to)} [{', '.join(chosen)}]"
            groups.append(DigestGroup(config, chosen, key))
    return groups


def notify_groups(digest: Digest, accounts: Sequence[Account]) -> list[DigestGroup]:
    """A digest per `digest.notify` URL, each with its own ledger rows (keyed by a hash:
    the URL holds a token), so one service that fails is the only one posted again."""
    if not digest.notify:
        return []
    from inboxwatch.delivery.notify import AppriseSender

    names = tuple(a.name for a in accounts)
    groups = []
    for secret in digest.notify:
        url = secret.get_secret_value()
        key = "notify " + hashlib.sha256(url.encode()).hexdigest()[:16]
        groups.append(DigestGroup(digest, names, key, AppriseSender([url])))
    return groups


@dataclass(frozen=True)
class Shared:
    """Replicas on one database (service/replicas.py): a digest waits until `ready` says
    its accounts were polled since its time, and a claim older than `stale` is taken
    over (its replica died between claiming and sending)."""

    ready: Callable[[Sequence[str], datetime, datetime], bool]
    stale: timedelta
    # A claim's time is when it is made, not the poll's (which began before reading):
    # another replica judges it stale by it.
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


class DigestLedger:
    def __init__(
        self,
        group: DigestGroup,
        store: StateStore,
        accounts: Sequence[Account],
        shared: Shared | None = None,
    ):
        self.group = group
        self.config = group.config
        self.store = store
        self.accounts = accounts  # their open_url links
        self.shared = shared

    def _period(self, now: datetime) -> str | None:
        """The ledger key of the digest owed at `now`, or None when none is (or was) due."""
        config = self.config
        if latest_run(config.schedule, config.timezone, now) is None:
            return None
        period = period_key(config.schedule, config.timezone, now)
        key = f"{period} to {self.group.key}" if self.group.key else period
        entry = self.store.digest(key)
        return None if entry is not None and entry[0] in _DONE else key

    def due(self, now: datetime) -> bool:
        """The most recent time on the schedule has passed and its digest was not sent."""
        return self._period(now) is not None

    def send_if_due(self, report: Report, sender: Sender, now: datetime) -> str | None:
        """Pending -> sending -> sent, in the ledger; returns the period sent for.

        A crash between "sending" and "sent" resends with the same Message-ID
        (at-least-once); a digest the SMTP server did not accept stays pending.
        """
        period = self._period(now)
        report = self.group.part(report)
        signin = any(e.kind == "signin" for e in report.errors)
        if period is None or not (report.accounts or signin) or not self._ready(now):
            # Nothing due, or no account could be read: wait for one that can. An ended
            # sign-in does not end by waiting: the digest says so now.
            return None
        # Imported here: Jinja2 costs a `run --once` from cron ~25 ms, and most polls send
        # no digest (bench/README, poll-cron).
        from inboxwatch.delivery.digest import digest_message

        message = digest_message(report, self.config, now, self.accounts)
        if message is None:
            self.store.mark_digest(period, "empty", "", now)
            return None
        lost = self.store.ledger_lost()
        if lost is not None:
            raise StateError(
                f"digest for {period} not sent: the digest ledger was lost with a damaged "
                f"state file ({lost}); run `inboxwatch repair --accept-resend` to send "
                "digests again (one may arrive twice)"
            )
        message_id = str(message["Message-ID"])
        # The claim: a full or read-only disk fails here, before the server takes it.
        at, stale = now, None
        if self.shared is not None:
            at = self.shared.clock()
            stale = at - self.shared.stale
        if not self.store.claim_digest(period, message_id, at, stale):
            log.info("digest for %s is being sent by another replica", period)
            return None
        log.info("digest for %s claimed; sending to %s", period, self.group.recipients)
        try:
            (self.group.sender or sender).send(message)
        except InboxwatchError:
            self.store.mark_digest(period, "pending", message_id, now)
            raise
        self.store.mark_digest(period, "sent", message_id, now)
        self._listed(report, now)
        log.info("digest for %s sent to %s", period, self.group.recipients)
        return period

    def _ready(self, now: datetime) -> bool:
        if self.shared is None:
            return True  # one service read every account in this very poll
        run = latest_run(self.config.schedule, self.config.timezone, now)
        return run is not None and self.shared.ready(self.group.accounts, run, now)

    def _listed(self, report: Report, now: datetime) -> None:
        """The threads this digest listed, by the schedule's period (not the recipients'):
        `digests_seen` counts digests, not copies of one. Only those it showed: a thread
        past a long list's end (reminders.LISTED) was not seen, so `remind = "once"`
        still lists it when the list is shorter."""
        accounts, overdue = len(report.accounts), reminding(report)
        shown = (listed(overdue.get(a.name, []), accounts)[0] for a in report.accounts)
        threads = [(f.account, f.thread_id) for found in shown for f in found]
        self.store.note_listed(
            period_key(self.config.schedule, self.config.timezone, now), threads, now
        )


class Digests:
    """Every digest the config asks for: `digest.to`'s and each account's `digest_to`."""

    def __init__(
        self,
        digest: Digest,
        store: StateStore,
        accounts: Sequence[Account],
        teams: Sequence[Team] = (),
        shared: Shared | None = None,
    ):
        groups = digest_groups(digest, accounts, teams) + notify_groups(digest, accounts)
        self.ledgers = [DigestLedger(group, store, accounts, shared) for group in groups]

    def due(self, now: datetime) -> bool:
        return any(ledger.due(now) for ledger in self.ledgers)

    def send_if_due(self, report: Report, sender: Sender, now: datetime) -> str | None:
        """Each digest that is due; one that cannot be delivered does not hold back the
        others, and its error is raised after them. Returns what was sent, or None."""
        periods = each_delivered(self.ledgers, lambda each: each.send_if_due(report, sender, now))
        return "; ".join(p for p in periods if p is not None) or None


def each_delivered(items: Iterable[T], deliver: Callable[[T], R]) -> list[R]:
    """`deliver` each item; one that cannot be delivered holds back no other, and the
    first failure is raised after them all."""
    done: list[R] = []
    failure: InboxwatchError | None = None
    for item in items:
        try:
            done.append(deliver(item))
        except InboxwatchError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return done
