"""One poll as the tests drive it: a Poller made for the call, given the state that a
running service would carry between polls (failed logins, parsed messages, the last
report) when a test passes it in."""

from __future__ import annotations

from datetime import datetime

from inboxwatch.config import Settings
from inboxwatch.core.model import Report
from inboxwatch.core.ports import Sender, StateStore
from inboxwatch.service.poller import AuthBlock, Poller, PollResult
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
        return poller.poll(now)
    finally:
        poller.close()  # a service keeps its sessions between polls; this one is done
