"""`run --once` after a change, against a real Dovecot: the kept report brought forward by
what changed (service.splicing) is what a whole read of the mailbox gives, reading from
the cache only what the change touches; where it cannot follow, the run reads whole."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest

from inboxwatch.core.model import ReplyStandard, Report
from inboxwatch.service import poller, splicing
from inboxwatch.store import lastreport
from inboxwatch.store.sqlite import SqliteStore
from tests.conftest import OWNER, mail
from tests.integration.test_lastreport import as_before_schema_14, kept, polls
from tests.integration.test_service import T0, H, Recorder, seed, settings_for
from tests.integration.test_standards_imap import with_standards
from tests.polling import poll_once

pytestmark = pytest.mark.dovecot


def comparable(report: Report) -> tuple[object, ...]:
    """All of it but when it was made and the reply standard's `judged`, which a report
    carried forward keeps as of its read (core.carried); its conversations and delays in
    any order, as a running service's (core.verdicts)."""

    def plain(reply: ReplyStandard) -> tuple[object, ...]:
        figures = replace(reply, judged=0, delays=sorted(reply.delays), each=[])
        return figures, Counter(reply.each)

    stats = replace(report.stats, reply=ReplyStandard())
    accounts = [(replace(a, reply=ReplyStandard()), plain(a.reply)) for a in report.accounts]
    lists = (report.overdue, report.waiting, report.invitations)
    return stats, plain(report.stats.reply), accounts, *lists, report.awaiting, report.awaiting_soon


@pytest.fixture
def counted(monkeypatch):
    """The whole reads (run_scan) and the kept report's brought forward, in order."""
    calls: list[str] = []
    run_scan, brought = poller.run_scan, splicing.brought

    def scan(*args, **kwargs):
        calls.append("whole")
        return run_scan(*args, **kwargs)

    def spliced(*args, **kwargs):
        found = brought(*args, **kwargs)
        calls.append("spliced" if found is not None else "refused")
        return found

    monkeypatch.setattr(poller, "run_scan", scan)
    monkeypatch.setattr(splicing, "brought", spliced)
    return calls


def whole(dovecot, box, tmp_path, now):
    """What a first read of the mailbox reports (a state of its own)."""
    settings, store = polls(dovecot, box, tmp_path / "whole")
    try:
        return poll_once(settings, store, Recorder(), now).report
    finally:
        store.close()


def test_a_change_is_spliced_into_the_kept_report(dovecot, sent_mailbox, tmp_path, counted):
    box = sent_mailbox
    seed(box)
    box.add(
        "INBOX", mail("Cy <cy@x.example>", subject="Invoice", mid="<cy@x.example>"), T0 - 60 * H
    )
    box.add("INBOX", mail("Di <di@x.example>", subject="Young"), T0 - 20 * H)
    settings, store = polls(dovecot, box, tmp_path)
    try:
        poll_once(settings, store, Recorder(), T0, keep_report=True)
        assert store.named("work", "INBOX") and store.named("work", "Sent")
        # You answered Q0; Cy wrote again without linking headers (the subject fallback),
        # and you to Cy likewise; Q1 was marked answered on the phone, Q2 deleted.
        box.add("Sent", mail(OWNER, "anna@client.example", in_reply_to="<q0@client.example>",
                             subject="Re: Q0"), T0 + H / 2)  # fmt: skip
        box.add("INBOX", mail("Cy <cy@x.example>", subject="Re: Invoice"), T0 + H / 2)
        box.add("Sent", mail(OWNER, "cy@x.example", subject="Invoice"), T0 + H / 3)
        box.client.select_folder("INBOX")
        uids = box.client.search(["SUBJECT", "Q1"]) + box.client.search(["SUBJECT", "Q2"])
        box.client.add_flags(uids[:1], [b"\\Answered"])
        box.client.add_flags(uids[1:], [b"\\Deleted"])
        box.client.expunge()
        later = T0 + H
        spliced = poll_once(settings, store, Recorder(), later, keep_report=True)
        assert counted == ["whole", "spliced"]
        assert spliced.fetched == 3
        report = kept(settings, store)  # the run shows counts; its findings are rows
        carried = poll_once(settings, store, Recorder(), later + 30 * H, keep_report=True)
        assert counted == ["whole", "spliced"]  # nothing changed: carried, as before
        overdue = kept(settings, store, later + 30 * H).overdue
    finally:
        store.close()
    assert comparable(report) == comparable(whole(dovecot, box, tmp_path, later))
    assert not report.overdue and [f.subject for f in report.waiting] == ["Young", "Re: Invoice"]
    assert (spliced.report.stats.overdue, spliced.report.stats.pending) == (0, 2)
    assert overdue == whole(dovecot, box, tmp_path / "2", later + 30 * H).overdue
    assert carried.report.stats.overdue == len(overdue) == 2


def test_mail_falling_out_of_the_lookback_is_spliced_out(dovecot, sent_mailbox, tmp_path, counted):
    box = sent_mailbox
    seed(box)
    box.add("Sent", mail(OWNER, "x@y.example", subject="Later"), T0 - 10 * H)
    settings, store = polls(dovecot, box, tmp_path)
    settings = with_standards(settings, lookback=timedelta(hours=100))
    try:
        poll_once(settings, store, Recorder(), T0, keep_report=True)
        box.add("INBOX", mail("Bo <bo@x.example>", subject="New"), T0 + H)
        later = T0 + 59 * H  # the first sent message (72 h old) and Q2 (42 h) age out
        spliced = poll_once(settings, store, Recorder(), later, keep_report=True)
        assert counted == ["whole", "spliced"]
        report = kept(settings, store)
    finally:
        store.close()
    fresh, other = polls(dovecot, box, tmp_path / "whole")
    try:
        full = poll_once(
            with_standards(fresh, lookback=timedelta(hours=100)), other, Recorder(), later
        )
    finally:
        other.close()
    assert comparable(report) == comparable(full.report)
    assert {f.subject for f in full.report.overdue} == {"Q0", "Q1", "New"}
    assert spliced.report.stats.overdue == 3


def test_folders_a_service_wrote_are_read_whole(dovecot, sent_mailbox, tmp_path, counted):
    """A running service keeps no names (store/names.py): the next `run --once` reads the
    folders it wrote whole, without reading the kept report first, and names them."""
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    try:
        poll_once(settings, store, Recorder(), T0)  # the service
        assert not store.named("work", "INBOX")
        poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
        assert store.named("work", "INBOX")
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="New"), T0 + H)
        poll_once(settings, store, Recorder(), T0 + 2 * H)  # the service again: unnamed
        sent_mailbox.add("INBOX", mail("Ed <ed@x.example>", subject="Newer"), T0 + 2 * H)
        found = poll_once(settings, store, Recorder(), T0 + 3 * H, keep_report=True)
    finally:
        store.close()
    assert counted == ["whole", "whole", "whole", "whole"]
    assert {"New", "Newer"} <= {f.subject for f in found.report.waiting + found.report.overdue}


@pytest.mark.parametrize(
    ("gone", "folders", "error"),
    [("Projects", ["INBOX", "Projects"], "folder"), ("Sent", None, "coverage")],
)
def test_a_folder_gone_means_a_whole_read(
    dovecot, sent_mailbox, tmp_path, counted, gone, folders, error
):
    """A folder the account read, named in the config or found as its sent folder
    (SPECIAL-USE, or its name), is gone: the whole read says what that means."""
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    if folders is not None:
        sent_mailbox.create(gone)
        settings = with_standards(settings, folders=folders)
    try:
        poll_once(settings, store, Recorder(), T0, keep_report=True)
        sent_mailbox.client.delete_folder(gone)
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="New"), T0)
        found = poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
    finally:
        store.close()
    assert counted == ["whole", "refused", "whole"]
    assert [e.kind for e in found.report.errors] == [error]


def test_a_due_digest_means_a_whole_read(dovecot, sent_mailbox, tmp_path, counted):
    """A digest shows the reply standard as of its read (core.carried)."""
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)  # a digest at 08:00
    store = SqliteStore(settings.state.path_resolved())
    sender = Recorder()
    try:
        poll_once(settings, store, sender, T0, keep_report=True)
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="New"), T0 + H)
        poll_once(settings, store, sender, T0 + 2 * H, keep_report=True)
        sent_mailbox.add("INBOX", mail("Ed <ed@x.example>", subject="Newer"), T0 + 3 * H)
        poll_once(settings, store, sender, T0 + 24 * H, keep_report=True)
    finally:
        store.close()
    assert counted == ["whole", "spliced", "whole"]
    assert len(sender.sent) == 2


def test_a_kept_report_that_does_not_decode_means_a_whole_read(
    dovecot, sent_mailbox, tmp_path, counted
):
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    try:
        first = poll_once(settings, store, Recorder(), T0, keep_report=True)
        key = lastreport.fingerprint(settings)
        folders = lastreport.encode_folders(first.report)
        store.save_report(key, folders, b'{"overdue": [1]}', [], False)
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="New"), T0)
        found = poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
    finally:
        store.close()
    assert counted == ["whole", "whole"]
    assert "New" in {f.subject for f in found.report.waiting + found.report.overdue}


def test_kept_rows_that_no_longer_match_mean_a_whole_read(dovecot, sent_mailbox, tmp_path, counted):
    """A conversation the change takes out is not among the rows (store/keptrows.py): the
    run reads whole, as the next would (no report is kept over rows that do not match)."""
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    try:
        poll_once(settings, store, Recorder(), T0, keep_report=True)
        with store.transaction() as db:
            db.execute("DELETE FROM kept_conversations")
        # You answered Q0: its conversation is taken out and put in again, answered.
        answer = mail(OWNER, "anna@client.example", in_reply_to="<q0@client.example>")
        sent_mailbox.add("Sent", answer, T0 + H / 2)
        found = poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
        assert found.kept is None and kept(settings, store).overdue == found.report.overdue
    finally:
        store.close()
    assert counted == ["whole", "spliced", "whole"]
    assert found.report.overdue == whole(dovecot, sent_mailbox, tmp_path, T0 + H).overdue


def test_a_cache_from_before_names_is_named_by_the_next_whole_read(
    dovecot, sent_mailbox, tmp_path, counted
):
    """Rows an earlier version cached have no arrival time, and no folder is named
    (schema 14): the next `run --once` reads whole and names them; the one after splices."""
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    try:
        poll_once(settings, store, Recorder(), T0, keep_report=True)
        as_before_schema_14(store)
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="New"), T0 + H)
        poll_once(settings, store, Recorder(), T0 + 2 * H, keep_report=True)
        assert store.arrived("work", "INBOX", None, T0) == store.uids("work", "INBOX") - {4}
        sent_mailbox.add("INBOX", mail("Ed <ed@x.example>", subject="Newer"), T0 + 2 * H)
        poll_once(settings, store, Recorder(), T0 + 3 * H, keep_report=True)
        found = kept(settings, store)
    finally:
        store.close()
    assert counted == ["whole", "whole", "spliced"]
    assert comparable(found) == comparable(whole(dovecot, sent_mailbox, tmp_path, T0 + 3 * H))


def test_a_renumbered_folder_means_a_whole_read(dovecot, sent_mailbox, tmp_path, counted):
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    try:
        poll_once(settings, store, Recorder(), T0, keep_report=True)
        validity = store.folder("work", "INBOX").uidvalidity
        dovecot.doveadm(
            *("mailbox", "update", "-u", sent_mailbox.user),
            *("--uid-validity", str(validity + 7), "INBOX"),
        )
        found = poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
        assert store.folder("work", "INBOX").uidvalidity == validity + 7
        assert store.named("work", "INBOX")  # named afresh by the whole read
    finally:
        store.close()
    assert counted == ["whole", "refused", "whole"]
    assert found.fetched == 3 and len(found.report.overdue) == 3


def test_a_sent_folder_without_your_mail_means_a_whole_read(
    dovecot, sent_mailbox, tmp_path, counted
):
    """Contract rule 6: the whole read says why nothing is overdue any more."""
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    try:
        poll_once(settings, store, Recorder(), T0, keep_report=True)
        sent_mailbox.client.select_folder("Sent")
        sent_mailbox.client.add_flags(sent_mailbox.client.search(["ALL"]), [b"\\Deleted"])
        sent_mailbox.client.expunge()
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="New"), T0)
        found = poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
    finally:
        store.close()
    assert counted == ["whole", "refused", "whole"]
    assert [e.kind for e in found.report.errors] == ["coverage"] and not found.report.overdue


def test_vip_from_sent_means_a_whole_read(dovecot, sent_mailbox, tmp_path, counted):
    """Who is a VIP depends on every message you sent in 90 days."""
    seed(sent_mailbox)
    settings, store = polls(dovecot, sent_mailbox, tmp_path)
    settings = with_standards(settings, vip_from_sent=True)
    try:
        poll_once(settings, store, Recorder(), T0, keep_report=True)
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="New"), T0)
        poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
    finally:
        store.close()
    assert counted == ["whole", "refused", "whole"]
