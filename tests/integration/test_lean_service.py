"""A lean service (service.lean) against a real Dovecot: once a read's report is out it
keeps it (rows, names) and drops its memory, and each poll after is brought forward
from the kept report; what it shows is what a service keeping its memory shows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from pydantic import SecretStr

from inboxwatch.config import Settings
from inboxwatch.service import lean
from inboxwatch.service.metrics import Metrics
from inboxwatch.service.poller import Poller
from inboxwatch.service.result import PollResult
from inboxwatch.service.sync import MemoryCache
from inboxwatch.store.sqlite import SqliteStore
from tests.conftest import OWNER, mail
from tests.integration.test_lastreport import kept
from tests.integration.test_service import T0, H, Recorder, seed, settings_for

pytestmark = pytest.mark.dovecot


def served(settings: Settings, lean: bool) -> tuple[Poller, SqliteStore]:
    """A poller as `inboxwatch run` makes one (service.scheduler), and its store."""
    store = SqliteStore(settings.state.path_resolved())
    poller = Poller(settings, store, Recorder(), memory=MemoryCache(), keep_report=lean, lean=lean)
    return poller, store


def job(poller: Poller, now: datetime) -> PollResult:
    """A poll, and what the service does once its line is out."""
    result = poller.poll(now)
    poller.settle()
    return result


def test_a_lean_service_shows_what_a_service_keeping_its_memory_shows(
    dovecot, sent_mailbox, tmp_path
):
    box = sent_mailbox
    seed(box)
    box.add("INBOX", mail("Cy <cy@x.example>", subject="Young"), T0 - 20 * H)
    settings = settings_for(dovecot, box.user, tmp_path / "lean", to=[])
    thin, thin_store = served(settings, lean=True)
    full, full_store = served(settings_for(dovecot, box.user, tmp_path / "full", to=[]), False)

    def answer_q0() -> None:
        box.add("Sent", mail(OWNER, "anna@client.example", in_reply_to="<q0@client.example>",
                             subject="Re: Q0"), T0 + 2 * H)  # fmt: skip

    def flag_q1() -> None:
        box.client.select_folder("INBOX")
        box.client.add_flags(box.client.search(["SUBJECT", "Q1"]), [b"\\Answered"])

    steps: list[tuple[int, Callable[[], None] | None]] = [
        (0, None),
        (1, lambda: box.add("INBOX", mail("Di <di@x.example>", subject="New"), T0 + H)),
        (3, answer_q0),
        (5, flag_q1),
        (30, None),  # waits grow: "Young" and "New" cross their window
    ]
    try:
        for hours, change in steps:
            if change is not None:
                change()
            now = T0 + hours * H
            shown, expected = job(thin, now), job(full, now)
            assert thin.memory is None  # dropped once its report was kept
            figures = (shown.report.stats.overdue, shown.report.stats.pending)
            assert figures == (expected.report.stats.overdue, expected.report.stats.pending)
            assert shown.count("work") == expected.count("work") == figures
            assert kept(settings, thin_store, now).overdue == expected.report.overdue
        assert shown.kept is not None  # the last polls were brought forward
        metrics = Metrics()
        metrics.observe(shown, ["work"], T0 + 30 * H)
        assert metrics.overdue.labels("work")._value.get() == figures[0]
    finally:
        for poller, store in ((thin, thin_store), (full, full_store)):
            poller.close()
            store.close()


def test_a_lean_service_keeps_its_memory_while_an_account_fails(dovecot, sent_mailbox, tmp_path):
    """A report with an error is not kept (lastreport.py): the service goes on from its
    memory, as one that keeps it does, until a clean read's report can be kept."""
    seed(sent_mailbox)
    good = settings_for(dovecot, sent_mailbox.user, tmp_path, to=[])
    broken = good.accounts[0].model_copy(update={"name": "other", "password": SecretStr("no")})
    settings = good.model_copy(update={"accounts": [*good.accounts, broken]})
    poller, store = served(settings, lean=True)
    try:
        first = job(poller, T0)
        assert [e.account for e in first.report.errors] == ["other"]
        assert poller.memory is not None and "work" in poller.memory.scans
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="New"), T0 + H)
        second = job(poller, T0 + 2 * H)  # "other" is not retried: its login failed
        assert second.fetched == 1 and second.report.stats.pending == 1
        assert poller.memory is not None
    finally:
        poller.close()
        store.close()


def test_shedding_clears_the_parsers_caches():
    from inboxwatch.core.subjects import base_subject

    base_subject("Re: something to remember")
    assert base_subject.cache_info().currsize > 0
    assert any(cache is base_subject for cache in lean._caches())
    lean.shed()
    assert base_subject.cache_info().currsize == 0


def test_a_report_that_cannot_be_kept_leaves_the_service_on_its_memory(
    dovecot, sent_mailbox, tmp_path, monkeypatch, caplog
):
    """The poll went well and its line is out: a state that refuses the rows (a full
    disk, say) costs the service its leanness, not a poll."""
    from inboxwatch.errors import StateError

    seed(sent_mailbox)
    poller, store = served(settings_for(dovecot, sent_mailbox.user, tmp_path, to=[]), True)

    def refused(*args: object) -> None:
        raise StateError("state.path: the disk is full")

    try:
        poller.poll(T0)
        with monkeypatch.context() as patched:
            patched.setattr(lean, "keep", refused)
            poller.settle()
        assert poller.memory is not None and poller.previous is not None
        assert any("report not kept (state.path: the disk is full)" in r.getMessage()
                   for r in caplog.records)  # fmt: skip
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="New"), T0 + H)
        again = job(poller, T0 + 2 * H)  # from memory; its report kept this time
        assert again.fetched == 1 and again.kept is None and poller.memory is None
    finally:
        poller.close()
        store.close()


def test_accounts_are_brought_forward_side_by_side(dovecot, sent_mailbox, tmp_path):
    """Each account's part of a change is read at once, as a whole read reads them
    (`max_parallel`): over a slow link hundreds of accounts each wait on their server."""
    seed(sent_mailbox)
    one = settings_for(dovecot, sent_mailbox.user, tmp_path / "thin", to=[])
    twin = one.accounts[0].model_copy(update={"name": "home"})
    settings = one.model_copy(update={"accounts": [*one.accounts, twin]})
    other = settings.model_copy(update={"state": settings_for(
        dovecot, sent_mailbox.user, tmp_path / "full", to=[]).state})  # fmt: skip
    thin, thin_store = served(settings, lean=True)
    full, full_store = served(other, lean=False)
    try:
        job(thin, T0), job(full, T0)
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="New"), T0 + H)
        shown, expected = job(thin, T0 + 30 * H), job(full, T0 + 30 * H)
        assert shown.kept is not None and shown.fetched == 2  # one message, each account
        for name in ("work", "home"):
            assert shown.count(name) == expected.count(name) == (4, 0)
    finally:
        for poller, store in ((thin, thin_store), (full, full_store)):
            poller.close()
            store.close()
