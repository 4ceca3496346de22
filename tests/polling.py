"""One poll as the tests drive it: a Poller made for the call, given the state that a
running service would carry between polls (failed logins, parsed messages, the last
report) when a test passes it in."""

from __future__ import annotations

from datetime import datetime

from inboxwatch.config import Settings
from inboxwatch.core.carried import advance
from inboxwatch.core.model import Report
from inboxwatch.core.ports import Sender, StateStore
from inboxwatch.core.reminders import shown_of
from inboxwatch.service.poller import AuthBlock, Poller
from inboxwatch.service.result import PollResult
from inboxwatch.service.sync import MemoryCache


def poll_once(
    settings: Settings,
    store: StateStore,
    sender: Sender,
    now: datetime,
    *,
    blocked: dict[str, AuthBlock] | None = None,
    previous: Report | None = None,
    memory: MemoryCache | None = None,
    keep_report: bool = False,
) -> PollResult:
    poller = Poller(settings, store, sender, memory=memory, keep_report=keep_report)
    if blocked is not None:
        poller.blocked = blocked  # shared with the test, as a service keeps it across polls
    poller.previous = previous
    try:
        return _whole(poller.poll(now), poller, now)
    finally:
        poller.close()  # a service keeps its sessions between polls; this one is done


def _whole(result: PollResult, poller: Poller, now: datetime) -> PollResult:
    """A `run --once` brought forward from its kept report shows counts, its findings
    kept as rows (service.keptreport): read whole for the tests, and the counts checked
    against them."""
    if result.kept is None:
        return result
    whole = result.kept.report(poller.plans)
    assert whole is not None
    store = poller.store
    shown = shown_of(store.snoozes(), store.digests_seen(), now, advance(whole, poller.plans, now))
    counts = (shown.stats.overdue, shown.stats.pending)
    assert counts == (result.report.stats.overdue, result.report.stats.pending)
    result.report = shown
    return result
