"""The service's unit of work: one poll of every account, then the digest if one is due.

A `Poller` holds what every poll of one service uses (settings and their plans, the
state store, the sender, the stop flag, the parsed-message memory, the logins that
failed and the last report), so a poll is `poller.poll(now)`. `inboxwatch run`
schedules it and `run --once` calls it once; `now` is a parameter, so tests drive
it with any clock.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from inboxwatch.auth.refresh import tokens_dir
from inboxwatch.config import Account, Settings
from inboxwatch.core.carried import advance
from inboxwatch.core.model import Coverage, PollRecord, Report, ReportError
from inboxwatch.core.ports import MailSource, Sender, StateStore
from inboxwatch.core.reminders import shown_of
from inboxwatch.core.scan import AccountPlan, SourceFactory, collector_paused, joined, run_scan
from inboxwatch.core.snooze import Snooze
from inboxwatch.errors import AuthError, InboxwatchError, ServerError
from inboxwatch.imap.slots import ServerSlots
from inboxwatch.service import lean, splicing
from inboxwatch.service.backoff import (
    AuthBlock,
    backing_off,
    cache_short,
    clock_jump,
    coverage,
    fingerprint,
    stale_details,
)
from inboxwatch.service.keptreport import KeptReport, keep
from inboxwatch.service.ledger import Digests, Shared
from inboxwatch.service.plans import plan_of
from inboxwatch.service.quickcheck import QuickCheck
from inboxwatch.service.result import PollResult
from inboxwatch.service.sessions import Sessions
from inboxwatch.service.sync import MemoryCache, SyncingSource
from inboxwatch.store import lastreport

if TYPE_CHECKING:
    from inboxwatch.service.replicas import Replica

log = logging.getLogger(__name__)


class Poller:
    """Polls every account incrementally, commits what was read, sends the digest if due.

    `memory`: the parsed messages a running service keeps, so its polls after a change
    redo only what changed. `keep_report` (`run --once`, a process per poll): the
    report is kept in the state file, and the one kept before serves as the previous
    report. `lean` (a running service that keeps its report): once a read's report is
    out, it is kept and the memory dropped (`settle`), and the polls after it work from
    the kept report as `run --once` does; a service that is not lean reads everything at
    its first poll and keeps it in memory.
    """

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        sender: Sender,
        *,
        stop: threading.Event | None = None,
        memory: MemoryCache | None = None,
        keep_report: bool = False,
        replica: Replica | None = None,
        lean: bool = False,
    ) -> None:
        self.settings = settings
        self.replica = replica
        self.plans = [plan_of(a) for a in settings.accounts]  # the one source of windows
        # A replica polls the part it leased (_narrow); its digests show them all.
        self.every, self.every_plan = list(settings.accounts), self.plans
        self.accounts = {a.name: a for a in settings.accounts}
        self.tokens = tokens_dir(settings)  # OAuth sign-ins, beside the state file
        self.store = store
        self.sender = sender
        self.stop = stop or threading.Event()
        self.memory = memory
        self.keep_report = keep_report
        self.lean = lean
        self.unkept: Report | None = None  # lean: the clean report `settle` keeps
        shared = None if replica is None else Shared(replica.ready, replica.stale)
        teams = settings.team_digests()
        self.digests = Digests(settings.digest, store, settings.accounts, teams, shared)
        slots = ServerSlots(settings.max_per_server)  # connections to each server at once
        # Logged in between polls by a running service, and from the quick check to the read
        # within one: `run --once` logs in once, and out at close().
        self.sessions = Sessions(self.accounts, self.tokens, slots)
        self.quick = QuickCheck(store, self.sessions, settings.max_parallel)
        self.blocked: dict[str, AuthBlock] = {}  # failed logins, not retried
        # The last clean poll's report: when no folder changed and no digest is due, it is
        # carried forward in time instead of re-reading the cache. Used once.
        self.previous: Report | None = None

    def poll(self, now: datetime) -> PollResult:
        # Paused through the whole poll, not only the scan: a cron run's kept report (tens
        # of thousands of findings) is made into rows outside it, and the collector's
        # walks of the growing heap took over half of that (bench/README.md, issue 21).
        with collector_paused():
            return self._poll(now)

    def _poll(self, now: datetime) -> PollResult:
        started = time.monotonic()
        if self.replica is not None:
            self._narrow(self.replica.take())
        previous, self.previous = self.previous, None
        stored = None
        if self.keep_report and previous is None:
            stored = KeptReport.of(self.store, self.settings)
        polls = self.store.polls()  # read once: the clock check and the backoff share it
        full = self._clock_jumps(now, polls)
        notes = self.store.snoozes()  # the user's, changed by `snooze` beside the service
        if stored is not None and self.replica is None:  # a replica keeps the whole report
            if not (full or self.digests.due(now)):
                found = self._from_kept(stored, now, polls, notes)
                if found is not None:
                    found.seconds = time.monotonic() - started
                    return found
            stored = None
        kept = None if full else self._carry(previous, stored, now)
        carried = kept is not None
        if kept is not None:
            result = PollResult(advance(kept, self.plans, now), 0, 0.0, None)
        else:
            result = self._read(now, full, polls)
        held = functools.partial(shown_of, notes, self.store.digests_seen(), now)
        shown = held(result.report)
        result.digest = self._deliver(result.report, shown, held, carried, now)
        if not carried and self.keep_report and not result.report.errors:
            if self.lean:  # kept once the poll's line is out (`settle`)
                self.unkept = result.report
            else:  # for the next run to start from
                keep(self.store, self.settings, result.report)
        result.seconds = time.monotonic() - started
        # Carried forward as read: a snooze that ends, or an unsnooze, shows at once.
        self.previous = None if result.report.errors else result.report
        result.report = shown
        return result

    def _deliver(
        self,
        report: Report,
        shown: Report,
        held: Callable[[Report], Report],
        carried: bool,
        now: datetime,
    ) -> str | None:
        """The digest if one is due (of `shown`; a replica's of every replica's reports,
        this one's kept with them, as `held` shows them); the period it was sent for."""
        if self.replica is None:  # a carried poll has no digest due (_carry)
            return None if carried else self.digests.send_if_due(shown, self.sender, now)
        mine = [n for n in self.accounts if n in self.replica.mine]
        self.replica.keep(report, now, mine, read=not carried)
        if not self.digests.due(now):  # whichever replica finds a digest due sends it
            return None
        everyone = advance(joined(self.replica.everyone(), now, now), self.every_plan, now)
        return self.digests.send_if_due(held(everyone), self.sender, now)

    def _from_kept(
        self, stored: KeptReport, now: datetime, polls: dict[str, PollRecord], notes: list[Snooze]
    ) -> PollResult | None:
        """A poll from the kept report (`run --once`, a lean service; no clock jump, no
        digest due): carried forward in time when no folder changed, else brought forward
        by the change where every folder is named (service.splicing); None where a whole
        read is needed. Its report holds the figures and the counts it shows, not the
        findings (they stay rows: service.keptreport): the poll shows its line."""
        if set(stored.folders) != set(self.accounts):
            return None
        if self._unchanged(stored.folders):
            head = stored.head()
            shown = head and stored.shown(advance(head, self.plans, now), self.plans, notes, now)
            if not shown:
                return None
            self._recorded(now)
            return PollResult(shown[0], 0, 0.0, None, stored, shown[1])
        if not splicing.named(self.store, stored.folders) or self._skipped(now, polls):
            return None
        head = stored.head()
        opened: dict[str, SyncingSource] = {}
        with splicing.closing(opened):
            opener = functools.partial(self._opened, opened)
            at = (now, self.settings.max_parallel)
            found = head and splicing.brought(head, self.plans, self.store, opener, at)
        if not found:
            return None
        for source in opened.values():
            source.commit()
        self._recorded(now)
        kept = stored.splice(*found)  # False: the rows no longer matched; read whole
        counted = stored.shown(found[0], self.plans, notes, now) if kept else None
        fetched = sum(s.fetched for s in opened.values())
        return counted and PollResult(counted[0], fetched, 0.0, None, stored, counted[1])

    def _recorded(self, now: datetime) -> None:
        """Every account's poll recorded as a success at `now`."""
        for plan in self.plans:
            self.store.record_poll(plan.name, now, covers=self._covers(plan))

    def _lost(self, name: str) -> bool:
        """A replica whose lease on `name` ended during this poll (its renewals failed
        for longer than a lease row lasts) writes nothing of it: another replica may be
        polling it now."""
        if self.replica is None or name in self.replica.mine:
            return False
        log.warning("%s: lease lost during the poll; nothing of it written", name)
        return True

    def _narrow(self, names: frozenset[str]) -> None:
        """A replica polls the accounts it leased (service/replicas.py); those it gave up
        are logged out and dropped from memory."""
        if names == set(self.accounts):
            return
        accounts = [a for a in self.every if a.name in names]
        for name in set(self.accounts) - names:
            self.sessions.forget(name)
            if self.memory is not None:
                self.memory.forget(name)
        self.settings = self.settings.model_copy(update={"accounts": accounts})
        self.accounts = {a.name: a for a in accounts}
        self.plans = [p for p in self.every_plan if p.name in names]
        self.previous = None  # it covered other accounts

    def settle(self) -> None:
        """What a running service does between polls, once a poll's report is out: index
        the threads a first poll (or a rebuild) made, which the next poll that finds a
        change needs (core.incremental; it would index them itself). A lean service
        keeps the report instead, and drops its memory (service.lean)."""
        if self.memory is not None and self.unkept is not None:
            report, self.unkept = self.unkept, None
            try:
                with collector_paused():
                    lean.keep(self.store, self.settings, self.memory, report)
            except InboxwatchError as exc:  # the poll went well: it goes on from memory
                log.warning("report not kept (%s); polls go on from memory", exc)
                return
            self.memory, self.previous = None, None
            lean.shed()
        elif self.memory is not None:
            for memo in self.memory.scans.values():
                memo.threads.settle()

    def close(self) -> None:
        """The sessions kept between polls, logged out (the service stops)."""
        self.sessions.close(self.settings.max_parallel)

    def _covers(self, plan: AccountPlan) -> Coverage:
        return coverage(self.accounts[plan.name], plan)

    def _clock_jumps(self, now: datetime, polls: dict[str, PollRecord]) -> set[str]:
        """The accounts whose cache a clock jump made untrustworthy, or which does not
        hold what this poll reads (service.backoff): read in full."""
        jumped = set()
        for plan in self.plans:
            record, wanted = polls.get(plan.name), self._covers(plan)
            reason = clock_jump(record, plan, now)
            if reason is not None:
                log.warning("%s: %s; reading its mailbox in full", plan.name, reason)
            elif (reason := cache_short(record, wanted)) is not None:
                log.info("%s: %s; reading its mailbox in full once", plan.name, reason)
                if stale_details(record, wanted):
                    self.store.forget_details(plan.name)  # read before the poll uses them
            if reason is not None:
                jumped.add(plan.name)
                if self.memory is not None:
                    self.memory.scans.pop(plan.name, None)
        return jumped

    def _opened(self, opened: dict[str, SyncingSource], name: str) -> SyncingSource:
        self._factory(name, opened, set(), kept=True)()
        return opened[name]

    def _read(
        self,
        now: datetime,
        full: set[str],
        polls: dict[str, PollRecord],
    ) -> PollResult:
        opened: dict[str, SyncingSource] = {}
        skipped = self._skipped(now, polls)
        left_out = {e.account for e in skipped}
        plans = [p for p in self.plans if p.name not in left_out]
        if self.lean and self.memory is None:  # the memory a lean service's `settle` drops
            self.memory = MemoryCache()
        jobs = [(plan, self._factory(plan.name, opened, full)) for plan in plans]
        memos = self.memory.scans if self.memory is not None else None
        parallel = self.settings.max_parallel
        report = run_scan(jobs, now, now, memos=memos, parallel=parallel)
        report.errors.extend(skipped)
        read = {summary.name for summary in report.accounts}
        for plan in plans:
            if self._lost(plan.name):
                continue
            if plan.name in read:
                opened[plan.name].commit()
                self.store.record_poll(plan.name, now, covers=self._covers(plan))
            else:
                self._record_failure(self.accounts[plan.name], report, now)
        fetched = sum(source.fetched for source in opened.values())
        return PollResult(report, fetched, 0.0, None)

    def _factory(
        self,
        name: str,
        opened: dict[str, SyncingSource],
        full: set[str],
        kept: bool = False,
    ) -> SourceFactory:
        """`kept`: brought forward from the kept report (`_from_kept`), without memory."""

        def factory() -> MailSource:
            inner = self.sessions.open(name)
            source = SyncingSource(
                inner,
                self.store,
                name,
                self.stop,
                None if kept else self.memory,
                full=name in full,
                deadline=self.settings.service.account_timeout.total_seconds(),
                release=lambda session, ok: self.sessions.done(name, session, ok),
                named=self.keep_report and self.replica is None,  # for _from_kept
                naming=not self.lean,  # a lean service names what it read in `settle`
            )
            opened[name] = source
            return source

        return factory

    def _skipped(self, now: datetime, polls: dict[str, PollRecord]) -> list[ReportError]:
        """Accounts left out of this poll, each with the reason the report and digest show."""
        interval = self.settings.service.poll_interval
        skipped = []
        for account in self.settings.accounts:
            record = polls.get(account.name)
            block = self.blocked.get(account.name)
            if block is not None and block.fingerprint == fingerprint(account, self.tokens):
                message = (
                    f"{block.message} (not retried until the password, sign-in or config changes)"
                )
                skipped.append(ReportError(account.name, "auth", message, AuthError.exit_code))
            elif record is not None and backing_off(record, interval, now):
                message = (
                    f"skipped while backing off after {record.failures} failed poll(s): "
                    f"{record.last_error}"
                )
                skipped.append(
                    ReportError(account.name, "connection", message, ServerError.exit_code)
                )
        return skipped

    def _record_failure(self, account: Account, report: Report, now: datetime) -> None:
        error = next(e for e in report.errors if e.account == account.name)
        wait = now + timedelta(seconds=error.retry_after) if error.retry_after else None
        self.store.record_poll(account.name, now, error.message, error.exit_code, wait)
        if error.kind == "auth":
            self.blocked[account.name] = AuthBlock(fingerprint(account, self.tokens), error.message)
            log.error(
                "%s: %s; not retrying until its password, sign-in or config changes",
                account.name,
                error.message,
            )
        else:
            log.warning("%s: %s", account.name, error.message)

    def _carry(
        self, previous: Report | None, stored: KeptReport | None, now: datetime
    ) -> Report | None:
        """The previous report (the service's, or the one `run --once` stored), when no
        folder changed and no digest is due, so it only needs moving forward in time; the
        poll is then recorded."""
        if self.digests.due(now):
            return None
        if previous is not None:
            folders = None if previous.errors else lastreport.folders_of(previous)
        else:
            folders = None if stored is None else stored.folders
        if folders is None or set(folders) != set(self.accounts) or not self._unchanged(folders):
            return None
        if stored is not None and previous is None:
            previous = stored.report(self.plans)  # a replica's `run --once`: whole
            if previous is None:
                return None
        self._recorded(now)  # as read: a changed config is not carried (fingerprint)
        return previous

    def _unchanged(self, folders: dict[str, tuple[str, ...]]) -> bool:
        try:
            return self.quick.unchanged(folders)
        except InboxwatchError as exc:
            log.info("quick check failed (%s); full poll", exc)
            return False
