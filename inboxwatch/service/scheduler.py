"""`inboxwatch run`: thin APScheduler 3.x wiring around `Poller.poll`.

A poll every `service.poll_interval`, and one at each `digest.schedule` time so
the digest goes out on time. Both run the same guarded job (never two at
once). SIGTERM/SIGINT stop the scheduler, let the current poll abandon its
work without committing, and log out of IMAP.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

from inboxwatch.config import Settings
from inboxwatch.core.ports import Sender
from inboxwatch.errors import CorruptState, InboxwatchError
from inboxwatch.periods import cron_trigger
from inboxwatch.service.poller import Poller
from inboxwatch.service.replicas import replica_of
from inboxwatch.service.result import PollResult
from inboxwatch.service.sync import Interrupted, MemoryCache
from inboxwatch.store.beside import open_store

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from apscheduler.schedulers.blocking import BlockingScheduler

    from inboxwatch.service.metrics import Metrics

log = logging.getLogger(__name__)
STOP_GRACE = 8.0  # seconds the current poll gets to notice a stop request


class Scheduler:
    """Runs a Poller on the poll interval and at each digest time, one poll at a time."""

    def __init__(
        self,
        settings: Settings,
        sender: Sender,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        keep_report: bool = False,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.stop = threading.Event()
        self.busy = threading.Lock()
        self.store = open_store(settings.state)
        # PostgreSQL: this process is one replica of the service (service/replicas.py).
        self.replica = replica_of(settings, self.store)
        self._scheduler: BlockingScheduler | None = None
        # `keep_report` (`run --once`): the next run, a fresh process, starts from this
        # poll's report. A service's memory keeps parsed messages, threads and verdicts for
        # a read, so that it redoes only what changed; one poll has no use for it (its
        # upkeep cost a 100,000-message `run --once` ~0.5 s). A service is lean: it keeps
        # its report as `run --once` does and drops that memory between polls (at 100,000
        # messages 204 MB held idle, ~82 MB lean; service.lean). Replicas share no kept
        # report: theirs keep the memory.
        lean = not keep_report and self.replica is None
        self.poller = Poller(
            settings,
            self.store,
            sender,
            stop=self.stop,
            memory=None if keep_report else MemoryCache(),
            keep_report=keep_report or lean,
            replica=self.replica,
            lean=lean,
        )
        if self.replica is not None:
            self.replica.start(self._wake, settle=not keep_report)
        self.metrics: Metrics | None = None  # with service.health_port, from run_forever
        self.beat = time.monotonic()  # when the last poll ended (or the service started)

    def _observe(self, result: PollResult | None) -> None:
        """The poll into the metrics: its result, or (None) a poll that failed whole."""
        if self.metrics is None:
            return
        if result is None:
            self.metrics.failed.inc()
        else:
            # This poll's accounts: a replica's are those it leased, not the others'.
            self.metrics.observe(result, list(self.poller.accounts), self.clock())

    def job(self) -> int:
        """One poll; returns its exit code. Never runs twice at once."""
        if not self.busy.acquire(blocking=False):
            log.info("previous poll still running; skipped")
            return 0
        try:
            result = self._poll()
            self._observe(result)
            log.warning(result.line()) if result.report.errors else log.info(result.line())
            self.poller.settle()  # after the poll's line: its report is out
            code = result.report.exit_code()
            return code if code > 1 else 0
        except Interrupted:
            log.info("poll abandoned: stopping")
            return 0
        except InboxwatchError as exc:
            self._observe(None)
            log.error("poll failed: %s", exc)
            return exc.exit_code
        finally:
            self.beat = time.monotonic()
            self.busy.release()

    def live(self) -> tuple[bool, str]:
        """/livez: a poll ended lately. A poll stuck past every deadline (a hung thread)
        keeps renewing nothing useful; a restart gives its accounts to another replica."""
        quiet = time.monotonic() - self.beat
        service = self.settings.service
        limit = (3 * service.poll_interval + service.account_timeout).total_seconds()
        if quiet <= limit:
            return True, f"a poll ended {quiet:.0f}s ago"
        return False, f"no poll has ended for {quiet:.0f}s (more than {limit:.0f}s)"

    def _wake(self) -> None:
        """A poll now, not at the next interval: a replica died (its accounts are free) or
        joined (this one gives back what is over its share)."""
        scheduler = self._scheduler
        if scheduler is not None and scheduler.running:
            scheduler.add_job(self.job, id="wake", replace_existing=True)

    def _poll(self) -> PollResult:
        """One poll on the file state.path names now; a damaged file is set aside and the
        poll made again from the mailbox (store/recovery.py)."""
        self.store.follow_path()
        try:
            return self.poller.poll(self.clock())
        except CorruptState as exc:
            self.store.recover(str(exc))
            self.poller.previous = None
            if self.poller.memory is not None:
                self.poller.memory = MemoryCache()  # it mirrored the file set aside
            return self.poller.poll(self.clock())

    def _serve(self) -> WSGIServer | None:
        """The HTTP port, when `service.health_port` asks for one (imported only then:
        prometheus-client costs a `run --once` from cron ~50 ms)."""
        service = self.settings.service
        if not service.health_port:
            return None
        from inboxwatch.service.health import health
        from inboxwatch.service.metrics import Metrics, serve

        self.metrics = Metrics()
        return serve(
            service.health_address,
            service.health_port,
            self.metrics,
            lambda: health(self.settings, self.clock()),
            self.live,
        )

    def run_forever(self) -> int:
        server = self._serve()
        try:
            return self._schedule()
        finally:
            if server is not None:
                server.shutdown()

    def _schedule(self) -> int:
        # Imported here: `run --once` from cron schedules nothing (~10 ms of every run).
        from apscheduler.schedulers.blocking import BlockingScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        scheduler = self._scheduler = BlockingScheduler(timezone=UTC)
        interval = self.settings.service.poll_interval
        options = {
            "max_instances": 1,
            "coalesce": True,
            "misfire_grace_time": int(interval.total_seconds()),
        }
        scheduler.add_job(
            self.job,
            IntervalTrigger(seconds=interval.total_seconds()),
            next_run_time=datetime.now(UTC),
            **options,
        )
        digest = self.settings.digest
        # A poll at each digest's time: [digest]'s and each team digest's own schedule.
        times = {(d.schedule, d.timezone) for d, _ in self.settings.team_digests()}
        for schedule, zone in sorted(times | {(digest.schedule, digest.timezone)}):
            scheduler.add_job(self.job, cron_trigger(schedule, zone), **options)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %s: stopping", signal.Signals(signum).name)
            self.stop.set()
            scheduler.shutdown(wait=False)

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        log.info(
            "running: polling every %s, digest on '%s' (%s)",
            interval,
            digest.schedule,
            digest.timezone,
        )
        scheduler.start()
        # A poll still running sees `stop` between folders and leaves without committing.
        if self.busy.acquire(timeout=STOP_GRACE):
            self.busy.release()
        return 0

    def close(self) -> None:
        self.poller.close()
        if self.replica is not None:
            self.replica.close()
        self.store.close()
