"""`inboxwatch run`: thin APScheduler 3.x wiring around `service.poll_once`.

A poll every `service.poll_interval`, and one at each `digest.schedule` time so
the digest goes out on time. Both run the same guarded job (never two at
once). SIGTERM/SIGINT stop the scheduler, let the current poll abandon its
work without committing, and log out of IMAP.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from inboxwatch.core.scan import Sender
from inboxwatch.config import Settings
from inboxwatch.errors import InboxwatchError
from inboxwatch.core.model import Report
from inboxwatch.periods import cron_trigger
from inboxwatch.service.poller import AuthBlock, poll_once
from inboxwatch.store.state import StateStore
from inboxwatch.service.sync import Interrupted, MemoryCache

log = logging.getLogger(__name__)
STOP_GRACE = 8.0  # seconds the current poll gets to notice a stop request


class Service:
    def __init__(
        self,
        settings: Settings,
        sender: Sender,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        keep_report: bool = False,
    ) -> None:
        self.settings = settings
        # `run --once`: the next run, a fresh process, starts from this poll's report.
        self.keep_report = keep_report
        self.sender = sender
        self.clock = clock
        self.stop = threading.Event()
        self.busy = threading.Lock()
        self.store = StateStore(settings.state.path_resolved())
        self.blocked: dict[str, AuthBlock] = {}  # failed logins, not retried
        self.previous: Report | None = None  # the last poll's report, for unchanged polls
        self.memory = MemoryCache()  # the parsed messages, so polls skip reading them back

    def job(self) -> int:
        """One poll; returns its exit code. Never runs twice at once."""
        if not self.busy.acquire(blocking=False):
            log.info("previous poll still running; skipped")
            return 0
        try:
            previous, self.previous = self.previous, None  # reused once, after a clean poll
            result = poll_once(
                self.settings,
                self.store,
                self.sender,
                self.clock(),
                self.stop,
                self.blocked,
                previous,
                self.memory,
                self.keep_report,
            )
            self.previous = None if result.report.errors else result.report
            log.warning(result.line()) if result.report.errors else log.info(result.line())
            code = result.report.exit_code()
            return code if code > 1 else 0
        except Interrupted:
            log.info("poll abandoned: stopping")
            return 0
        except InboxwatchError as exc:
            log.error("poll failed: %s", exc)
            return exc.exit_code
        finally:
            self.busy.release()

    def run_forever(self) -> int:
        scheduler = BlockingScheduler(timezone=UTC)
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
        scheduler.add_job(self.job, cron_trigger(digest.schedule, digest.timezone), **options)

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
        self.store.close()
