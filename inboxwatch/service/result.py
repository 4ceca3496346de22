"""A poll's result: its report, what it fetched and sent, and its one log line."""

from __future__ import annotations

from dataclasses import dataclass

from inboxwatch.core.model import Report
from inboxwatch.service.keptreport import KeptReport


@dataclass
class PollResult:
    report: Report
    fetched: int
    seconds: float
    digest: str | None  # the period whose digest was sent in this poll
    # Brought forward from the kept report (`run --once`, a lean service): `report` holds
    # the figures and the counts it shows, by account in `counts` (overdue, waiting), and
    # the findings stay rows (read whole by `kept.report`).
    kept: KeptReport | None = None
    counts: dict[str, tuple[int, int]] | None = None

    def count(self, account: str) -> tuple[int, int]:
        """The account's overdue and waiting threads, as the report shows them."""
        if self.counts is not None:
            return self.counts.get(account, (0, 0))
        overdue = sum(f.account == account for f in self.report.overdue)
        return overdue, sum(f.account == account for f in self.report.waiting)

    def line(self) -> str:
        """The poll's one log line; a failed account with its reason (cut short)."""
        failed: dict[str, str] = {}
        for error in self.report.errors:
            if error.exit_code > 1:
                failed.setdefault(error.account, error.message)
        text = (
            f"poll: {len(self.report.accounts)} account(s) read, {self.fetched} message(s) "
            f"fetched, {self.report.stats.overdue} overdue, {self.seconds:.2f}s"
        )
        if failed:
            why = (f"{name} ({_short(failed[name])})" for name in sorted(failed))
            text += f"; failed: {'; '.join(why)}"
        return text + (f"; digest sent for {self.digest}" if self.digest else "")


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"
