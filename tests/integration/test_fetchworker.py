"""The second connection for big folders: the records it sends back, and a scan with it
against the real Dovecot, whole, read-only, and whole again when the worker fails."""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest

from inboxwatch.config import Account
from inboxwatch.imap import headerfetch
from inboxwatch.imap import worker as worker_module
from inboxwatch.imap.login import Secret
from inboxwatch.imap.source import ImapSource
from inboxwatch.imap.worker import FetchWorker, runs
from tests.conftest import NOW, OWNER, mail
from tests.integration.test_imap_security import WRITE_COMMANDS
from tests.proxy import RecordingProxy

H = timedelta(hours=1)


def test_a_job_sends_its_uids_as_runs():
    assert runs([1, 2, 3, 5, 7, 8]) == [(1, 3), (5, 5), (7, 8)]
    assert runs(range(1, 27_001)) == [(1, 27_000)]  # a big job is a few bytes on the pipe
    assert runs([]) == [] and runs([9, 4]) == [(9, 9), (4, 4)]  # any order comes back as sent


def account(dovecot, user, port=None) -> Account:
    return Account(
        name="work",
        host="127.0.0.1",
        port=port or dovecot.port,
        security="plain",
        username=user,
        addresses=[OWNER],
    )


def seed(box, count=40):
    box.bulk(
        "INBOX",
        [(mail(f"C{n} <c{n}@x.example>", subject=f"Q {n}"), NOW - n * H) for n in range(count)],
    )


def read(dovecot, box, port=None):
    source = ImapSource(account(dovecot, box.user, port), Secret(dovecot.password))
    try:
        scan = source.fetch_since("INBOX", NOW - 400 * 24 * H)
        return scan, source.headers
    finally:
        source.close()


@pytest.mark.dovecot
def test_a_big_folder_is_read_over_two_connections_and_whole(dovecot, mailbox, monkeypatch):
    seed(mailbox)
    alone, _ = read(dovecot, mailbox)
    monkeypatch.setattr(headerfetch, "PARALLEL_MIN", 10)
    with RecordingProxy(dovecot.port) as proxy:
        shared, fetcher = read(dovecot, mailbox, proxy.port)
        commands = proxy.commands()
    assert proxy.connections == 2
    assert fetcher._login_as is not None  # the worker did its part: nothing fell back
    assert [m.uid for m in shared.messages] == list(range(1, 41))
    assert shared.messages == alone.messages and not shared.failures
    assert commands.count("EXAMINE") == 2 and not WRITE_COMMANDS & set(commands), commands


@pytest.mark.dovecot
def test_a_workers_job_is_handed_on_a_batch_at_a_time(dovecot, mailbox, monkeypatch):
    """Its FETCHes are pipelined (one wave), yet its records are handed on STREAM_BATCH at
    a time, as the worker encodes them: a job's parsed records are never all held."""
    seed(mailbox)
    monkeypatch.setattr(headerfetch, "STREAM_BATCH", 7)
    source = ImapSource(account(dovecot, mailbox.user), Secret(dovecot.password), worker=False)
    handed: list[list[int]] = []
    try:
        uidvalidity = source.examine("INBOX").uidvalidity
        since = NOW - 400 * 24 * H
        source.fetch_uids(
            "INBOX",
            uidvalidity,
            range(1, 41),
            since,
            lambda s: handed.append([m.uid for m in s.messages]),
        )
    finally:
        source.close()
    assert [len(h) for h in handed] == [7, 7, 7, 7, 7, 5]
    assert sorted(u for h in handed for u in h) == list(range(1, 41))


@pytest.mark.dovecot
def test_a_pipelined_read_reports_progress_as_records_arrive(dovecot, mailbox, monkeypatch):
    """A folder's FETCHes go as one wave, read at once: the progress bar still moves every
    PROGRESS_STEP records, and ends at the count it expected."""
    seed(mailbox)
    monkeypatch.setattr(headerfetch, "STREAM_BATCH", 7)
    monkeypatch.setattr(headerfetch, "PROGRESS_STEP", 5)

    class Steps:
        def __init__(self) -> None:
            self.expected = 0
            self.steps: list[int] = []

        def expect(self, count: int) -> None:
            self.expected += count

        def advance(self, count: int) -> None:
            self.steps.append(count)

    steps = Steps()
    source = ImapSource(account(dovecot, mailbox.user), Secret(dovecot.password))
    try:
        scan = source.fetch_since("INBOX", NOW - 400 * 24 * H, steps)
    finally:
        source.close()
    assert len(scan.messages) == 40 and steps.expected == 40
    assert steps.steps == [5] * 8


@pytest.mark.dovecot
def test_a_worker_that_dies_costs_time_not_messages(dovecot, mailbox, monkeypatch):
    seed(mailbox)
    monkeypatch.setattr(headerfetch, "PARALLEL_MIN", 10)
    submit = FetchWorker.submit

    def submit_and_die(self, *args):
        taken = submit(self, *args)
        self.proc.kill()
        return taken

    monkeypatch.setattr(FetchWorker, "submit", submit_and_die)
    scan, fetcher = read(dovecot, mailbox)
    assert [m.uid for m in scan.messages] == list(range(1, 41)) and not scan.failures
    assert fetcher._login_as is None  # reading alone from now on


@pytest.mark.dovecot
def test_the_worker_refuses_uids_of_another_uidvalidity(dovecot, mailbox):
    seed(mailbox, 3)
    source = ImapSource(account(dovecot, mailbox.user), Secret(dovecot.password))
    try:
        uidvalidity = source.examine("INBOX").uidvalidity
    finally:
        source.close()
    worker = FetchWorker(account(dovecot, mailbox.user), Secret(dovecot.password))
    try:
        assert worker.submit("INBOX", uidvalidity + 1, [1, 2, 3], NOW - 400 * 24 * H)
        assert "UIDVALIDITY" in worker.collect()
        assert worker.submit("INBOX", uidvalidity, [1, 2, 3], NOW - 400 * 24 * H)
        got = worker.collect()
        assert not isinstance(got, str) and [m.uid for m in got[0]] == [1, 2, 3]
    finally:
        worker.close()
    assert worker.proc.returncode == 0


@pytest.mark.dovecot
def test_a_worker_that_cannot_log_in_says_so(dovecot, mailbox):
    worker = FetchWorker(account(dovecot, mailbox.user), Secret("wrong password"))
    try:
        worker.submit("INBOX", 1, [1], NOW)
        assert "login failed" in worker.collect()
    finally:
        worker.close()


@pytest.mark.dovecot
def test_an_idle_worker_leaves_and_the_next_big_read_starts_another(dovecot, mailbox, monkeypatch):
    seed(mailbox)
    monkeypatch.setattr(headerfetch, "PARALLEL_MIN", 10)
    started = []
    monkeypatch.setattr(
        headerfetch,
        "FetchWorker",
        lambda *args: started.append(FetchWorker(*args, idle=0.3)) or started[-1],
    )
    source = ImapSource(account(dovecot, mailbox.user), Secret(dovecot.password))
    try:
        first = source.fetch_since("INBOX", NOW - 400 * 24 * H)
        started[0].proc.wait(timeout=10)  # no job within 0.3 s: it logs out and exits
        second = source.fetch_since("INBOX", NOW - 400 * 24 * H)
    finally:
        source.close()
    assert len(started) == 2 and started[0].proc.returncode == 0
    assert first.messages == second.messages and len(second.messages) == 40


@pytest.mark.dovecot
def test_garbled_records_from_the_worker_cost_time_not_messages(dovecot, mailbox, monkeypatch):
    seed(mailbox)
    monkeypatch.setattr(headerfetch, "PARALLEL_MIN", 10)

    def garbled(*args):
        raise ValueError("bad marshal data")

    monkeypatch.setattr(worker_module, "decode_scan", garbled)
    started: list[FetchWorker] = []
    monkeypatch.setattr(
        headerfetch, "FetchWorker", lambda *args: started.append(FetchWorker(*args)) or started[-1]
    )
    scan, fetcher = read(dovecot, mailbox)
    assert [m.uid for m in scan.messages] == list(range(1, 41)) and not scan.failures
    assert fetcher._login_as is None
    # Stopped, not waited for: the rest of a big answer would hold it writing to the pipe.
    assert started[0].proc.returncode == -signal.SIGKILL
