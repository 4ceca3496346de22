"""A cache is used only for what it holds. A poll reads by UID what arrived since the
last one and trusts its cache for the rest, so after `lookback` grew the mail older than
the last lookback's start was never read, after the account was pointed at another
mailbox the first one's threads were reported for it, and after an upgrade whatever the
old parsers misread or could not read stayed so (service/backoff.py)."""

from __future__ import annotations

import logging
import sqlite3
from datetime import timedelta

import pytest

from inboxwatch.config import Settings
from inboxwatch.core.bodytext import Details
from inboxwatch.core.model import Coverage
from inboxwatch.service.sync import MemoryCache
from inboxwatch.store.sqlite import SqliteStore
from tests.conftest import OWNER, Mailbox, mail
from tests.integration.test_service import T0, H, Recorder, settings_for
from tests.integration.test_standards_imap import with_standards
from tests.polling import poll_once

D = 24 * H


@pytest.fixture
def store(tmp_path):
    store = SqliteStore(tmp_path / "state.db")
    yield store
    store.close()


def with_lookback(settings: Settings, days: int) -> Settings:
    return with_standards(settings, lookback=timedelta(days=days))


def same_validity(dovecot, first: Mailbox, second: Mailbox) -> None:
    """The second mailbox's folders get the first's UIDVALIDITY, as if made in the same
    second (Dovecot's is the time the folder was made)."""
    for folder in ("INBOX", "Sent"):
        validity = first.client.select_folder(folder, readonly=True)[b"UIDVALIDITY"]
        dovecot.doveadm(
            "mailbox", "update", "-u", second.user, "--uid-validity", str(validity), folder
        )


@pytest.fixture
def box(sent_mailbox):
    sent_mailbox.add("Sent", mail(OWNER, "x@y.example", mid="<s0@m.example>"), T0 - 3 * D)
    sent_mailbox.add("INBOX", mail("Anna <anna@client.example>", subject="Old"), T0 - 40 * D)
    sent_mailbox.add("INBOX", mail("Bo <bo@client.example>", subject="Recent"), T0 - 10 * D)
    return sent_mailbox


def overdue(result) -> list[str]:
    return sorted(f.subject for f in result.report.overdue)


@pytest.mark.parametrize("mode", ["service", "run-once"])
def test_a_longer_lookback_reads_the_older_mail_once(dovecot, box, tmp_path, store, caplog, mode):
    settings = settings_for(dovecot, box.user, tmp_path)
    keep = mode == "run-once"

    def poll(days: int, hours: int):  # a restart with the config changed: a new memory
        memory = MemoryCache() if mode == "service" else None
        return poll_once(
            with_lookback(settings, days), store, Recorder(), T0 + hours * H,
            memory=memory, keep_report=keep,
        )  # fmt: skip

    assert overdue(poll(30, 0)) == ["Recent"]
    caplog.set_level(logging.INFO)
    grown = poll(60, 1)
    assert overdue(grown) == ["Old", "Recent"] and grown.fetched == 3  # read in full
    assert any("work: the lookback grew from 30d to 60d" in r.getMessage() for r in caplog.records)
    again = poll(60, 2)
    assert overdue(again) == ["Old", "Recent"] and again.fetched == 0
    # Shorter again: the cache holds all it needs; what fell out is dropped.
    shorter = poll(30, 3)
    assert overdue(shorter) == ["Recent"] and shorter.fetched == 0


def test_a_cache_from_before_the_lookback_was_noted_is_read_in_full_once(
    dovecot, box, tmp_path, store, caplog
):
    settings = with_lookback(settings_for(dovecot, box.user, tmp_path), 60)
    assert overdue(poll_once(settings, store, Recorder(), T0)) == ["Old", "Recent"]
    with sqlite3.connect(tmp_path / "state.db") as db:  # as an earlier version left it
        db.execute("UPDATE polls SET lookback = NULL, mailbox = NULL")
    caplog.set_level(logging.INFO)
    upgraded = poll_once(settings, store, Recorder(), T0 + H)
    assert upgraded.fetched == 3 and overdue(upgraded) == ["Old", "Recent"]
    assert any("an earlier version wrote it" in r.getMessage() for r in caplog.records)
    assert poll_once(settings, store, Recorder(), T0 + 2 * H).fetched == 0


def test_health_reads_the_polls_of_a_service_not_yet_upgraded(tmp_path, store):
    """`health` of the new version beside a running service of the one before, whose
    polls have no lookback column yet: it still sees the poll."""
    from inboxwatch.config import State
    from inboxwatch.store.beside import polls

    store.record_poll("work", T0, covers=Coverage("a1", timedelta(days=30), "1"))
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("ALTER TABLE polls DROP COLUMN parsed")  # 11's
        record = polls(State(path=str(tmp_path / "state.db")))["work"]
        assert record.last_success == T0 and record.covers is None
        db.execute("ALTER TABLE polls DROP COLUMN lookback")  # 10's
        db.execute("ALTER TABLE polls DROP COLUMN mailbox")
    record = polls(State(path=str(tmp_path / "state.db")))["work"]
    assert record.last_success == T0 and record.covers is None


@pytest.mark.parametrize("mode", ["service", "run-once"])
def test_an_account_pointed_at_another_mailbox_reads_that_one(dovecot, tmp_path, store, mode):
    """Two mailboxes made in the same second: Dovecot gives their folders one UIDVALIDITY,
    and the same UIDs. The account's cache of the first was taken for the second's."""
    first, second = Mailbox(dovecot, f"first-{mode}"), Mailbox(dovecot, f"second-{mode}")
    for box, who in ((first, "Anna"), (second, "Bo")):
        box.create("Sent")
        box.add("Sent", mail(OWNER, "x@y.example"), T0 - 3 * D)
        for n in range(3):
            asked = mail(f"{who} <{who.lower()}@x.example>", subject=f"{who} {n}")
            box.add("INBOX", asked, T0 - (2 + n) * D)
    same_validity(dovecot, first, second)
    settings = settings_for(dovecot, first.user, tmp_path)
    keep = mode == "run-once"
    memory = MemoryCache() if mode == "service" else None
    before = poll_once(settings, store, Recorder(), T0, memory=memory, keep_report=keep)
    assert overdue(before) == ["Anna 0", "Anna 1", "Anna 2"]
    moved = with_standards(settings, username=second.user)
    memory = MemoryCache() if mode == "service" else None  # a restart with the new config
    after = poll_once(moved, store, Recorder(), T0 + H, memory=memory, keep_report=keep)
    assert overdue(after) == ["Bo 0", "Bo 1", "Bo 2"] and after.fetched == 4
    first.close()
    second.close()


def test_what_was_read_of_the_other_mailboxs_bodies_is_not_taken_for_this_ones(
    dovecot, tmp_path, store
):
    """The body checks' cache is by folder, UIDVALIDITY and UID too: the first mailbox's
    invitation at UID 1 made the second one's question at UID 1 an invitation."""
    from tests.integration.test_bodies import google_invite

    first, second = Mailbox(dovecot, "first-bodies"), Mailbox(dovecot, "second-bodies")
    for box in (first, second):
        box.create("Sent")
        box.add("Sent", mail(OWNER, "x@y.example"), T0 - 3 * D)
    first.add("INBOX", google_invite().as_bytes(), T0 - 30 * H)
    second.add("INBOX", mail("Bo <bo@x.example>", subject="A question"), T0 - 30 * H)
    same_validity(dovecot, first, second)
    settings = settings_for(dovecot, first.user, tmp_path)
    before = poll_once(settings, store, Recorder(), T0)
    assert [f.subject for f in before.report.invitations] == ["Invitation: Design review"]
    moved = with_standards(settings, username=second.user)
    after = poll_once(moved, store, Recorder(), T0 + H)
    assert overdue(after) == ["A question"] and after.report.invitations == []
    first.close()
    second.close()


def parsed_by_older_parsers(tmp_path) -> None:
    """The state as other parsers left it: another version's, or another Python's
    (core.generation.PARSERS)."""
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("UPDATE polls SET parsed = '0 on Python 3.11.2'")


@pytest.mark.parametrize("mode", ["service", "run-once"])
def test_mail_the_old_parsers_could_not_read_is_read_again_after_an_upgrade(
    dovecot, box, tmp_path, store, caplog, mode
):
    """A parse failure is remembered by UID and not fetched again (store/failures.py), and
    a cached row keeps what the parsers made of it: after a parser fix both are read again
    once, or the message stays unread, or misread, for as long as the cache lives."""
    settings = with_lookback(settings_for(dovecot, box.user, tmp_path), 60)
    keep = mode == "run-once"

    def poll(hours: int):  # each a new process, or a restart: a new memory
        memory = MemoryCache() if mode == "service" else None
        return poll_once(
            settings, store, Recorder(), T0 + hours * H, memory=memory, keep_report=keep
        )

    assert overdue(poll(0)) == ["Old", "Recent"]
    validity = store.folder("work", "INBOX").uidvalidity
    cached = store.messages("work", "INBOX")
    old = next(uid for uid, m in cached.items() if m.subject == "Old")
    recent = next(uid for uid, m in cached.items() if m.subject == "Recent")
    # As the old parsers left them: "Old" unreadable, "Recent" misread as a newsletter.
    misread = cached[recent]._replace(list_headers=True, precedence="bulk")
    with store.transaction():
        state = store.folder("work", "INBOX")
        store.save_folder("work", "INBOX", state, [misread], [old], replace=False)
        store.save_failures(("work", "INBOX", validity), {old: "unparsable"}, [], False)
    kept = poll(1)  # the same parsers: the cache is trusted, as designed
    assert overdue(kept) == [] and kept.fetched == 0
    assert [(e.kind, e.uid) for e in kept.report.errors] == [("parse", old)]
    parsed_by_older_parsers(tmp_path)
    caplog.set_level(logging.INFO)
    fixed = poll(2)
    assert overdue(fixed) == ["Old", "Recent"] and fixed.report.errors == []
    assert fixed.fetched == 3  # read in full, once
    assert any("read by other parsers" in r.getMessage() for r in caplog.records)
    assert store.parse_failures(("work", "INBOX", validity)) == {}
    again = poll(3)
    assert overdue(again) == ["Old", "Recent"] and again.fetched == 0


def test_what_the_old_parsers_read_of_bodies_is_read_again_after_an_upgrade(
    dovecot, sent_mailbox, tmp_path, store
):
    """What was read of a pending message's body is kept by UID (store/bodies.py): after a
    parser fix it is read again, else a body the old parser misread stays misread."""
    sent_mailbox.add("Sent", mail(OWNER, "x@y.example"), T0 - 3 * D)
    sent_mailbox.add("INBOX", mail("Bo <bo@x.example>", subject="A question"), T0 - 30 * H)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    assert overdue(poll_once(settings, store, Recorder(), T0)) == ["A question"]
    where = ("work", "INBOX", store.folder("work", "INBOX").uidvalidity)
    (uid,) = store.messages("work", "INBOX")
    invite = Details(None, False, "REQUEST", "Design review", "20261210T100000Z")
    store.save_details(where, {uid: invite})  # as an old parser might have misread it
    kept = poll_once(settings, store, Recorder(), T0 + H)
    assert [f.subject for f in kept.report.invitations] == ["A question"]  # trusted
    parsed_by_older_parsers(tmp_path)
    fixed = poll_once(settings, store, Recorder(), T0 + 2 * H)
    assert overdue(fixed) == ["A question"] and fixed.report.invitations == []
    assert store.details(where, [uid])[uid].calendar == ""


def test_a_cache_from_before_its_parsers_were_noted_is_read_in_full_once(tmp_path):
    """Schema 12's upgrade: which Python's email package read a schema-11 cache is not
    known, so its polls say nothing of what it holds, and each account is read in full
    once (as after schema 11's)."""
    from inboxwatch.store.schema import MIGRATIONS

    path, stamp = tmp_path / "state.db", T0.isoformat()
    with sqlite3.connect(path) as db:  # as schema 11 left it
        for version in range(1, 12):
            for statement in MIGRATIONS[version]:
                db.execute(statement)
        db.execute("PRAGMA user_version = 11")
        row = "INSERT INTO polls VALUES (?, ?, ?, NULL, NULL, 0, NULL, ?, ?)"
        db.execute(row, ("noted", stamp, stamp, int((30 * D).total_seconds()), "a1"))
    upgraded = SqliteStore(path)
    try:
        record = upgraded.polls()["noted"]
        assert record.last_success == T0 and record.covers is None
    finally:
        upgraded.close()
