"""`inboxwatch health`, the container's health check: read from the state file alone."""

from __future__ import annotations

from datetime import datetime

from inboxwatch.config import Settings
from inboxwatch.store.sqlite import read_polls


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
