"""`run --once` from cron: the last clean poll's report, kept in the state file, is carried
forward by the next run when nothing changed, and never when anything it depends on did."""

from __future__ import annotations

import gc
from datetime import datetime

import pytest

from inboxwatch.core.carried import advance
from inboxwatch.core.ports import KeptChange, KeptFinding
from inboxwatch.core.snooze import snooze_of
from inboxwatch.service import poller
from inboxwatch.service.keptreport import KeptReport
from inboxwatch.service.plans import plan_of
from inboxwatch.service.poller import Poller
from inboxwatch.service.result import PollResult
from inboxwatch.service.scheduler import Scheduler
from inboxwatch.service.sync import MemoryCache
from inboxwatch.store import lastreport, notes
from inboxwatch.store.sqlite import SqliteStore
from tests.conftest import mail
from tests.integration.test_service import T0, H, Recorder, seed, settings_for
from tests.polling import poll_once
from tests.proxy import RecordingProxy

pytestmark = pytest.mark.dovecot


def polls(dovecot, box, tmp_path, port=None, **digest):
    settings = settings_for(dovecot, box.user, tmp_path, port=port, to=[], **digest)
    return settings, SqliteStore(settings.state.path_resolved())


def kept(settings, store, now=None):
    """The report `run --once` kept, whole (its head and rows: service.keptreport), as of
    `now` (else as of its own time)."""
    plans = [plan_of(a) for a in settings.accounts]
    found = KeptReport.of(store, settings)
    report = None if found is None else found.report(plans)
    assert report is not None
    return report if now is None else advance(report, plans, now)


def as_before_schema_14(store):
    """The cache as an earlier version left it: no arrival times, no names (store/names.py)."""
    with store.transaction() as db:
        db.execute("UPDATE messages SET received = NULL")
        db.execute("UPDATE folders SET named = 0")
        db.execute("DELETE FROM names")


def test_a_report_survives_the_state_file(dovecot, sent_mailbox, tmp_path):
    seed(sent_mailbox)
    sent_mailbox.add("INBOX", mail("Cy <cy@x.example>", subject="Young"), T0 - 20 * H)
    sent_mailbox.add("INBOX", mail("News <n@x.example>", headers={"List-Id": "<l.x>"}), T0 - 50 * H)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    try:
        report = poll_once(settings, store, Recorder(), T0).report
    finally:
        store.close()
    assert report.overdue and report.waiting and report.stats.excluded
    assert report.stats.reply.each and report.overdue[0].due is not None
    body = lastreport.encode(report)
    assert lastreport.decode(body) == report
    # A replica's part is text; one an earlier version kept begins with its folders' line.
    assert lastreport.decode(body.decode()) == report
    assert lastreport.decode(lastreport.encode_folders(report) + "\n" + body.decode()) == report


def test_run_once_carries_its_stored_report_while_nothing_changed(dovecot, sent_mailbox, tmp_path):
    seed(sent_mailbox)
    sent_mailbox.add("INBOX", mail("Cy <cy@x.example>", subject="Young"), T0 - 20 * H)
    with RecordingProxy(dovecot.port) as proxy:
        settings, store = polls(dovecot, sent_mailbox, tmp_path, port=proxy.port)
        try:
            poll_once(settings, store, Recorder(), T0, keep_report=True)
            before = len(proxy.client_bytes)
            later = T0 + 5 * H  # a fresh process: no report in memory; "Young" waited 25 h
            carried = poll_once(settings, store, Recorder(), later, keep_report=True)
            sent = bytes(proxy.client_bytes[before:]).decode()
            # The run shows counts (its findings stay rows); kept whole, a fresh read's.
            shown = kept(settings, store, later)
        finally:
            store.close()
    fresh, other = polls(dovecot, sent_mailbox, tmp_path / "fresh")  # reads it all
    try:
        full = poll_once(fresh, other, Recorder(), later)
    finally:
        other.close()
    assert "FETCH" not in sent and "SEARCH" not in sent
    assert shown.overdue == full.report.overdue and "Young" in {f.subject for f in shown.overdue}
    # Counts as a fresh read gives them; the reply standard stays as of the last read (a
    # carried report never makes a digest: a poll with one due always reads).
    assert carried.report.stats.overdue == full.report.stats.overdue
    assert (carried.report.stats.threads, carried.report.stats.pending) == (
        full.report.stats.threads,
        full.report.stats.pending,
    )


def test_a_stored_report_is_not_carried_once_mail_or_settings_changed(
    dovecot, sent_mailbox, tmp_path, monkeypatch
):
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    scans = []
    run_scan = poller.run_scan
    monkeypatch.setattr(poller, "run_scan", lambda *a, **k: scans.append(1) or run_scan(*a, **k))
    try:
        poll_once(settings, store, Recorder(), T0, keep_report=True)
        poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
        assert len(scans) == 1  # carried
        # A running service's first poll reads all into its memory: no report from the file.
        poll_once(settings, store, Recorder(), T0 + H)
        assert len(scans) == 2
        poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
        assert len(scans) == 3  # that poll kept no report, and dropped the one before
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="Changed"), T0 - 30 * H)
        changed = poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
        # brought forward by the change (service.splicing): not read whole, nor carried
        assert len(scans) == 3 and changed.report.stats.overdue == 4
        assert "Changed" in {f.subject for f in kept(settings, store).overdue}
        wider, _ = polls(dovecot, sent_mailbox, tmp_path / "other")
        wider.accounts[0].window = 96 * H  # another standard: the stored report does not apply
        judged = poll_once(wider, store, Recorder(), T0 + H, keep_report=True)
        assert len(scans) == 4 and not judged.report.overdue
    finally:
        store.close()


def test_a_service_poll_that_reads_new_mail_drops_the_stored_report(
    dovecot, sent_mailbox, tmp_path
):
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    try:
        poll_once(settings, store, Recorder(), T0, keep_report=True)  # run --once
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="Changed"), T0 - 30 * H)
        poll_once(settings, store, Recorder(), T0)  # the service: reads it, keeps no report
        # The folders are now as that poll left them: the report of before must not pass.
        later = poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
    finally:
        store.close()
    assert "Changed" in {f.subject for f in later.report.overdue}


def test_an_unreadable_stored_report_means_reading_the_cache(dovecot, sent_mailbox, tmp_path):
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    try:
        first = poll_once(settings, store, Recorder(), T0, keep_report=True)
        key = lastreport.fingerprint(settings)
        head = lastreport.encode_folders(first.report)
        body = lastreport.encode(first.report)
        for folders, damaged in (
            (head, b'{"overdue": [1]}'),
            (head, body[:-1]),
            (head, b"[1]"),
            ("[1]", body),
            ('{"a": 1}', body),
        ):
            store.save_report(key, folders, damaged, [], False)
            again = poll_once(settings, store, Recorder(), T0, keep_report=True)
            assert again.report.overdue == first.report.overdue, (folders, damaged[:20])
    finally:
        store.close()


def test_a_run_from_the_kept_report_counts_what_notes_hide(dovecot, sent_mailbox, tmp_path):
    """Counted from the rows (service.keptreport), as core.snooze.hold leaves a whole
    report: a muted thread and a snoozed one hidden, until the snooze ends. Rows a note
    may hold are read; where one does not decode, the run reads the cache whole."""
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    try:
        first = poll_once(settings, store, Recorder(), T0, keep_report=True)
        muted, snoozed = first.report.overdue[:2]
        with store.transaction() as db:
            notes.insert(db, snooze_of(muted, muted.thread_id, None, T0))
            notes.insert(db, snooze_of(snoozed, snoozed.message_ids[0], T0 + 3 * H, T0))
        carried = poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
        ended = poll_once(settings, store, Recorder(), T0 + 4 * H, keep_report=True)
        with store.transaction() as db:
            db.execute("UPDATE kept_findings SET row = ?", (b"[1]",))
        damaged = poll_once(settings, store, Recorder(), T0 + 5 * H, keep_report=True)
        service = poll_once(settings, store, Recorder(), T0 + 5 * H)  # reads whole
    finally:
        store.close()
    count = len(first.report.overdue)
    assert (carried.report.stats.overdue, ended.report.stats.overdue) == (count - 2, count - 1)
    assert damaged.report.overdue == service.report.overdue  # read whole: the findings
    assert damaged.report.stats.overdue == service.report.stats.overdue == count - 1


def test_a_run_that_finds_mail_changed_reads_no_stored_report(
    dovecot, sent_mailbox, tmp_path, monkeypatch
):
    """A big mailbox's report takes ~0.3 s and ~100 MB to decode, and its 22 MB to read:
    wasted when it is neither carried nor brought forward by the change (service.splicing:
    not where the folders' names are not kept, as in a state from before schema 14)."""
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    try:
        poll_once(settings, store, Recorder(), T0, keep_report=True)
        as_before_schema_14(store)
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="New"), T0 - 30 * H)

        def refused(*args: object) -> None:
            raise AssertionError("read a report that is not carried")

        monkeypatch.setattr(lastreport, "decode", refused)
        monkeypatch.setattr(store, "kept_report", refused)
        later = poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
    finally:
        store.close()
    assert "New" in {f.subject for f in later.report.overdue}


def test_a_cron_run_keeps_its_report_and_a_service_once_its_line_is_out(
    dovecot, sent_mailbox, tmp_path
):
    """A lean service (service.lean) keeps its report as `run --once` does, but after the
    poll's line: the folders named (~1.5 s at 100,000 messages) and the rows written then,
    the memory dropped; the polls after it are brought forward from the report."""
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path, to=[])
    key = lastreport.fingerprint(settings)
    once = Scheduler(settings, Recorder(), clock=lambda: T0, keep_report=True)
    try:
        assert once.job() == 0 and once.store.kept_folders(key) is not None
    finally:
        once.close()
    store = SqliteStore(settings.state.path_resolved())  # as before the service's first poll
    try:
        with store.transaction() as db:
            db.execute("DELETE FROM reports")
            db.execute("UPDATE folders SET named = 0")
    finally:
        store.close()
    runner = Scheduler(settings, Recorder(), clock=lambda: T0 + H)
    seen: list[tuple[bool, bool]] = []
    poll = runner.poller.poll

    def polled(now: datetime) -> PollResult:
        result = poll(now)
        seen.append((runner.store.kept_folders(key) is None, runner.store.named("work", "INBOX")))
        return result

    runner.poller.poll = polled  # type: ignore[method-assign]
    try:
        assert runner.job() == 0 and seen == [(True, False)]  # read whole, nothing kept yet
        assert runner.store.kept_folders(key) is not None and runner.store.named("work", "INBOX")
        assert runner.poller.memory is None
        assert runner.job() == 0 and runner.poller.memory is None  # from the kept report
    finally:
        runner.close()


def test_a_service_indexes_its_threads_after_the_polls_line(dovecot, sent_mailbox, tmp_path):
    """A service that keeps its memory (replicas: service.replicas) sends the first poll's
    report before its threads are indexed for the next poll (core.incremental), and
    indexes them then, between polls."""
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    poller = Poller(settings, store, Recorder(), memory=MemoryCache())
    try:
        poller.poll(T0)
        memory = poller.memory
        assert memory is not None and [m.threads.settled for m in memory.scans.values()] == [False]
        poller.settle()
        assert all(m.threads.settled for m in memory.scans.values())
    finally:
        poller.close()
        store.close()


def test_the_kept_report_is_encoded_and_decoded_with_the_collector_paused(
    dovecot, sent_mailbox, tmp_path, monkeypatch
):
    """A big mailbox's report is tens of thousands of findings: with the cyclic collector
    on, its walks of the growing heap took over half of a carried cron run (issue 21)."""
    seed(sent_mailbox)
    sent_mailbox.add("INBOX", mail("Cy <cy@x.example>", subject="Young"), T0 - 20 * H)
    seen: dict[str, list[bool]] = {"changes": [], "decode": []}
    for name, calls in seen.items():
        real = getattr(lastreport, name)
        monkeypatch.setattr(
            lastreport,
            name,
            lambda value, real=real, calls=calls: calls.append(gc.isenabled()) or real(value),
        )
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    try:
        first = poll_once(settings, store, Recorder(), T0, keep_report=True)
        carried = poll_once(settings, store, Recorder(), T0 + 5 * H, keep_report=True)
    finally:
        store.close()
    assert seen == {"changes": [False], "decode": [False]}  # rows made; the head read
    assert gc.isenabled()
    assert carried.report.stats.overdue == first.report.stats.overdue + 1  # "Young"


def test_reports_kept_before_schema_13_are_dropped_by_the_upgrade(tmp_path):
    """Schema 13 keeps the report as bytes with its folders apart: a schema-12 text is only
    a cache, dropped, and the next run reads the messages' cache. Replicas' parts stay."""
    import sqlite3

    from inboxwatch.store.schema import MIGRATIONS

    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:  # as schema 12 left it
        for version in range(1, 13):
            for statement in MIGRATIONS[version]:
                db.execute(statement)
        db.execute("PRAGMA user_version = 12")
        db.execute("INSERT INTO reports VALUES (1, 'fp', ?)", ('{"a": []}\n{}',))
        db.execute("INSERT INTO parts VALUES ('a', ?, '{}')", (T0.isoformat(),))
    upgraded = SqliteStore(path)
    try:
        assert upgraded.kept_folders("fp") is None and upgraded.parts() == {"a": (T0, "{}")}
        upgraded.save_report("fp", '{"a": []}', b"{}", [], True)
        assert upgraded.kept_report("fp", '{"a": []}') == b"{}"
    finally:
        upgraded.close()


def test_a_kept_report_is_whole_from_its_head_and_rows(tmp_path):
    """service.keptreport: what a replica's `run --once` carries; a head or a row that does
    not decode means none (the poll reads the cache)."""
    from inboxwatch.core.model import Report

    store = SqliteStore(tmp_path / "state.db")
    try:
        report = Report(T0, T0)
        store.save_report("key", "{}", lastreport.head(report), [], True)
        assert KeptReport(store, "key", "{}", {}).report([]) == report
        store.save_report("key", "{}", b"[1]", [], True)  # damaged: read whole, as before
        assert KeptReport(store, "key", "{}", {}).report([]) is None
        damaged = KeptFinding("a", "<t>", 0, 0, 0, "<t>", b"[1]")
        rows = [KeptChange("a", (), [damaged], {})]
        store.save_report("key", "{}", lastreport.head(report), rows, True)
        assert KeptReport(store, "key", "{}", {}).report([]) is None
    finally:
        store.close()
