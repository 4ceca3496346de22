"""run_scan's own duties, with a stand-in source (the sources are tested against real servers)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from inboxwatch.core.model import Address, MessageMeta
from inboxwatch.core.ports import FolderInfo, FolderScan, MailSource, Progress
from inboxwatch.core.rules import Policy
from inboxwatch.core.scan import AccountPlan, collector_paused, run_scan
from inboxwatch.errors import ServerError
from tests.conftest import NOW, OWNER


class _Source:
    """Two folders; notes whether the garbage collector ran while it was read."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.collector: list[bool] = []

    def list_folders(self) -> list[FolderInfo]:
        return [FolderInfo("INBOX"), FolderInfo("Sent", frozenset({"\\Sent"}))]

    def fetch_since(
        self,
        folder: str,
        since: datetime,
        progress: Progress | None = None,
        then: str | None = None,  # the folder read next: nothing to prepare here
    ) -> FolderScan:
        self.collector.append(gc.isenabled())
        if self.fail:
            raise ServerError("connection dropped; try again later")
        scan = FolderScan(folder)
        # One inbound thread waiting two days, one of the owner's: two threads.
        sender = Address("", "ann@x.example" if folder == "INBOX" else OWNER)
        when = NOW - timedelta(days=2)
        scan.messages.append(MessageMeta(folder, 1, f"<{folder}@x>", (), (), "Hi", sender, when))
        return scan

    def ask_details(self, folder: str, uids: object) -> Callable[[], dict[int, object]]:
        return dict  # no body: each pending message stays as the headers judged it

    def close(self) -> None:
        self.collector.append(gc.isenabled())


def _plan() -> AccountPlan:
    return AccountPlan(
        "work", (OWNER,), None, (), timedelta(hours=24), timedelta(days=30), Policy()
    )


@pytest.mark.parametrize("fail", [False, True])
def test_collector_paused_for_the_scan_and_back_on_after(fail: bool) -> None:
    source = _Source(fail)

    def factory() -> MailSource:
        return source

    assert gc.isenabled()
    report = run_scan([(_plan(), factory)], NOW, NOW)
    assert gc.isenabled()
    assert source.collector and not any(source.collector)
    assert [e.kind for e in report.errors] == (["connection"] if fail else [])
    assert (len(report.overdue), report.stats.threads) == ((0, 0) if fail else (1, 2))


def test_collector_left_off_when_the_caller_had_it_off() -> None:
    gc.disable()
    try:
        run_scan([(_plan(), _Source)], NOW, NOW)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_what_a_scan_made_is_not_left_young() -> None:
    """Else the first allocation after a scan (a service's next poll) walks all of it."""
    with collector_paused():
        made = [[n] for n in range(1000)]
    assert gc.isenabled()
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(m) in oldest for m in made)


def test_a_report_part_keeps_only_its_accounts_and_their_reply_standard():
    from datetime import UTC, datetime, timedelta

    from inboxwatch.core.model import AccountSummary, ReplyStandard, Report, ReportError

    now = datetime(2026, 11, 24, tzinfo=UTC)
    day = timedelta(days=1)
    report = Report(
        now,
        now,
        None,
        [
            AccountSummary("a", (), (), 5, 4, day, ReplyStandard(3, 2, 2, 1, [60.0, 7200.0])),
            AccountSummary("b", (), (), 9, 8, 2 * day, ReplyStandard(5, 5, 5, 5, [1.0] * 5)),
        ],
        errors=[ReportError("b", "auth", "no", 4)],
    )
    part = report.only({"a"})
    assert [a.name for a in part.accounts] == ["a"] and part.window == day
    assert part.errors == [] and part.stats.threads == 4
    assert part.stats.reply.delays == [60.0, 7200.0] and part.stats.reply.within_window == 1


def test_a_report_split_by_account_is_each_accounts_part_and_joins_back():
    """Replicas keep each account's part (Report.split, one pass) and compose a digest
    from them (core.scan.joined): the same as `only` for each, and as the whole."""
    from dataclasses import replace

    from inboxwatch.core.scan import joined

    plans = [replace(_plan(), name=name) for name in ("a", "b", "c")]
    failing = (plans[2], lambda: _Source(fail=True))
    report = run_scan([(plans[0], _Source), (plans[1], _Source), failing], NOW, NOW)
    parts = report.split(["a", "b", "c", "gone"])
    for name in ("a", "b", "c", "gone"):
        assert parts[name] == report.only([name])
    assert [len(parts[n].overdue) for n in "abc"] == [1, 1, 0] and len(parts["c"].errors) == 1
    again = joined([parts[n] for n in "abc"], NOW, NOW)
    assert again == report
