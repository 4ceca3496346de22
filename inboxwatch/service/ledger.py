"""The digest ledger: at most one digest per period of `digest.schedule`, decided from our
own state, not from the scheduler's memory (a restart or a missed run changes nothing)."""

from __future__ import annotations

import logging
from datetime import datetime

from inboxwatch.config import Digest
from inboxwatch.core.model import Report
from inboxwatch.core.ports import Sender, StateStore
from inboxwatch.errors import InboxwatchError, StateError
from inboxwatch.periods import latest_run, period_key

log = logging.getLogger(__name__)
_DONE = ("sent", "empty")


class DigestLedger:
    def __init__(self, config: Digest, store: StateStore) -> None:
        self.config = config
        self.store = store

    def _period(self, now: datetime) -> str | None:
        """The period whose digest is owed at `now`, or None when none is (or was) due."""
        config = self.config
        if not config.to or latest_run(config.schedule, config.timezone, now) is None:
            return None
        period = period_key(config.schedule, config.timezone, now)
        entry = self.store.digest(period)
        return None if entry is not None and entry[0] in _DONE else period

    def due(self, now: datetime) -> bool:
        """The most recent time on the schedule has passed and its digest was not sent."""
        return self._period(now) is not None

    def send_if_due(self, report: Report, sender: Sender, now: datetime) -> str | None:
        """Pending -> sending -> sent, in the ledger; returns the period sent for.

        A crash between "sending" and "sent" resends with the same Message-ID
        (at-least-once); a digest the SMTP server did not accept stays pending.
        """
        period = self._period(now)
        signin = any(e.kind == "signin" for e in report.errors)
        if period is None or not (report.accounts or signin):
            # Nothing due, or no account could be read: wait for one that can. An ended
            # sign-in does not end by waiting: the digest says so now.
            return None
        # Imported here: Jinja2 costs a `run --once` from cron ~25 ms, and most polls send
        # no digest (bench/README, poll-cron).
        from inboxwatch.delivery.digest import digest_message

        message = digest_message(report, self.config, now)
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
        self.store.claim_digest(period, message_id, now)
        try:
            sender.send(message)
        except InboxwatchError:
            self.store.mark_digest(period, "pending", message_id, now)
            raise
        self.store.mark_digest(period, "sent", message_id, now)
        log.info("digest for %s sent to %s", period, message["To"])
        return period
