"""The service: incremental polls, the digest ledger, health — against Dovecot and aiosmtpd.

The clock is a parameter of `poll_once`: days pass without waiting for them.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from inboxwatch.config import Account, Settings
from inboxwatch.core.model import Address, MessageMeta, PollRecord
from inboxwatch.delivery.smtp import SmtpSender
from inboxwatch.errors import DeliveryError, LockError
from inboxwatch.service.backoff import clock_jump
from inboxwatch.service.health import health
from inboxwatch.service.plans import plan_of
from inboxwatch.service.sync import MemoryCache
from inboxwatch.store.sqlite import SqliteStore
from tests.conftest import OWNER, mail
from tests.polling import poll_once
from tests.smtp import smtp_server

pytestmark = pytest.mark.dovecot
H = timedelta(hours=1)
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 in Berlin, a Tuesday


class Recorder:
    """An in-memory Sender for ledger tests; SMTP itself is tested with aiosmtpd."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    def send(self, msg: EmailMessage) -> None:
        self.sent.append(msg)


def settings_for(dovecot, user, tmp_path, port=None, smtp_port=None, **digest) -> Settings:
    return Settings(
        accounts=[
            {
                "name": "work",
                "host": "127.0.0.1",
                "port": port or dovecot.port,
                "security": "plain",
                "username": user,
                "password": dovecot.password,
                "addresses": [OWNER],
            }
        ],
        digest={"to": [OWNER], "timezone": "Europe/Berlin", "schedule": "0 8 * * *", **digest},
        smtp={"host": "127.0.0.1", "port": smtp_port or 25, "security": "plain", "retries": 0},
        service={"poll_interval": "15m"},
        state={"path": str(tmp_path / "state.db")},
    )


@pytest.fixture
def store(tmp_path):
    store = SqliteStore(tmp_path / "state.db")
    yield store
    store.close()


@pytest.fixture
def no_qresync(monkeypatch):
    """The service's sessions as with a server that does not offer QRESYNC (Dovecot does):
    changes are asked by UID and FETCH CHANGEDSINCE (imap.changes)."""
    from inboxwatch.service import sessions

    real = sessions.open_imap
    monkeypatch.setattr(sessions, "open_imap", lambda *a, **k: real(*a, **{**k, "resync": False}))


def seed(box, now=T0):
    box.add("Sent", mail(OWNER, "x@y.example", mid="<s0@m.example>"), now - 72 * H)
    for n in range(3):
        box.add(
            "INBOX",
            mail("Anna <anna@client.example>", subject=f"Q{n}", mid=f"<q{n}@client.example>"),
            now - (40 + n) * H,
        )


def test_second_poll_fetches_only_what_is_new(dovecot, sent_mailbox, tmp_path, store):
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    first = poll_once(settings, store, Recorder(), T0)
    assert first.fetched == 4 and len(first.report.overdue) == 3
    assert poll_once(settings, store, Recorder(), T0 + H).fetched == 0
    sent_mailbox.add("INBOX", mail("Bo <bo@x.example>", subject="New"), T0 - 30 * H)
    sent_mailbox.add(
        "Sent", mail(OWNER, "anna@client.example", in_reply_to="<q0@client.example>"), T0 - 1 * H
    )
    third = poll_once(settings, store, Recorder(), T0 + 2 * H)
    assert third.fetched == 2
    assert sorted(f.subject for f in third.report.overdue) == ["New", "Q1", "Q2"]


def test_flag_changes_and_expunges_are_noticed(dovecot, sent_mailbox, tmp_path, store):
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    assert len(poll_once(settings, store, Recorder(), T0).report.overdue) == 3
    other = sent_mailbox.client  # another client changes the mailbox
    other.select_folder("INBOX")
    other.add_flags([1], [b"\\Answered"])  # replied from the phone
    other.add_flags([2], [b"\\Deleted"])
    other.expunge()
    result = poll_once(settings, store, Recorder(), T0 + H)
    assert result.fetched == 0  # no header fetched again
    assert [f.subject for f in result.report.overdue] == ["Q2"]
    assert sorted(store.messages("work", "INBOX")) == [1, 3]


def test_changed_flags_are_asked_in_one_fetch_changedsince(
    dovecot, sent_mailbox, tmp_path, store, no_qresync
):
    """Without QRESYNC, RFC 7162 3.1.4: one FETCH (FLAGS) (CHANGEDSINCE <last
    HIGHESTMODSEQ>) over the cached UIDs' range, where SEARCH MODSEQ and a FETCH of what it
    found were two round trips."""
    from tests.proxy import RecordingProxy

    seed(sent_mailbox)
    sent_mailbox.add("INBOX", mail("Bo <bo@x.example>", subject="Q3"), T0 - 40 * H)
    with RecordingProxy(dovecot.port) as proxy:
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, port=proxy.port)
        assert len(poll_once(settings, store, Recorder(), T0).report.overdue) == 4
        modseq = store.folder("work", "INBOX").modseq
        other = sent_mailbox.client
        other.select_folder("INBOX")
        other.add_flags([1], [b"\\Answered"])  # replied from the phone
        other.add_flags([3], [b"$Label"])  # a flag that changes no verdict
        before = len(proxy.client_bytes)
        result = poll_once(settings, store, Recorder(), T0 + H)
        sent = bytes(proxy.client_bytes[before:]).decode()
    commands = [line.split(" ", 1)[1] for line in sent.split("\r\n") if " FETCH " in line]
    assert commands == [f"UID FETCH 1:4 (FLAGS) (CHANGEDSINCE {modseq})"], commands
    assert "MODSEQ" not in sent.replace("CHANGEDSINCE", "")
    assert result.fetched == 0  # Q0 (UID 1) answered from the phone: no longer listed
    assert sorted(f.subject for f in result.report.overdue) == ["Q1", "Q2", "Q3"]
    cached = store.messages("work", "INBOX")
    assert "$Label" in cached[3].flags and "\\Answered" in cached[1].flags
    assert "\\Answered" not in cached[2].flags


def test_uidvalidity_change_rebuilds_the_folder_cache(
    dovecot, sent_mailbox, tmp_path, store, caplog
):
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    poll_once(settings, store, Recorder(), T0)

    def warnings() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.levelno >= logging.WARNING and "UIDVALIDITY" in r.getMessage()
        ]

    assert warnings() == []  # a first read is no change
    before = store.folder("work", "INBOX")
    dovecot.doveadm(
        "mailbox",
        "update",
        "-u",
        sent_mailbox.user,
        "--uid-validity",
        str(before.uidvalidity + 7),
        "INBOX",
    )
    result = poll_once(settings, store, Recorder(), T0 + H)
    assert store.folder("work", "INBOX").uidvalidity == before.uidvalidity + 7
    assert result.fetched == 3 and len(result.report.overdue) == 3
    [warning] = warnings()
    assert "work" in warning.getMessage() and "'INBOX'" in warning.getMessage()


def test_one_digest_per_period_across_restarts_and_downtime(ca, dovecot, sent_mailbox, tmp_path):
    seed(sent_mailbox)
    with smtp_server(ca, "plain") as (handler, port):
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, smtp_port=port)
        sender = SmtpSender(settings.smtp)
        store = SqliteStore(settings.state.path_resolved())
        first = poll_once(settings, store, sender, T0)  # installed at 10:00, schedule 08:00
        assert first.digest == "2026-11-24T08:00@Europe/Berlin"
        assert poll_once(settings, store, sender, T0 + 3 * H).digest is None
        store.close()
        store = SqliteStore(settings.state.path_resolved())  # a restart in the same period
        assert poll_once(settings, store, sender, T0 + 4 * H).digest is None
        # Down for three days: one catch-up digest, for the latest period only.
        late = poll_once(settings, store, sender, T0 + 75 * H)
        assert late.digest == "2026-11-27T08:00@Europe/Berlin"
        assert poll_once(settings, store, sender, T0 + 76 * H).digest is None
        store.close()
    assert len(handler.received) == 2
    assert handler.received[0]["Message-ID"] != handler.received[1]["Message-ID"]


def test_failed_delivery_is_never_marked_sent_and_a_crash_resends_the_same_id(
    dovecot, sent_mailbox, tmp_path, store
):
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    from tests.dovecot import free_port

    down = SmtpSender(settings.smtp.model_copy(update={"port": free_port()}))
    with pytest.raises(DeliveryError):
        poll_once(settings, store, down, T0)
    assert store.digest("2026-11-24T08:00@Europe/Berlin")[0] == "pending"
    # A crash between "sending" and "sent": the next poll resends with the same Message-ID.
    store.mark_digest("2026-11-24T08:00@Europe/Berlin", "sending", "<x>", T0)
    recorder = Recorder()
    assert poll_once(settings, store, recorder, T0 + H).digest is not None
    again = Recorder()
    poll_once(settings, store, again, T0 + 2 * H)
    assert not again.sent and recorder.sent[0]["Message-ID"].startswith("<digest.")
    from inboxwatch.delivery.digest import message_id

    assert recorder.sent[0]["Message-ID"] == message_id(settings.digest, T0 + 5 * H)


@pytest.mark.parametrize(
    "start", [datetime(2026, 3, 27, 12, tzinfo=UTC), datetime(2026, 10, 23, 12, tzinfo=UTC)]
)
def test_dst_changes_give_one_digest_per_local_day(dovecot, sent_mailbox, tmp_path, store, start):
    seed(sent_mailbox, start)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    recorder = Recorder()
    periods = [
        poll_once(settings, store, recorder, start + hour * H).digest
        for hour in range(0, 4 * 24, 2)
    ]
    sent = [p for p in periods if p]
    # From Friday 13:00/14:00 local to Tuesday: Friday's (on start), then one each morning.
    month = start.strftime("%Y-%m")
    assert sent == [f"{month}-{day}T08:00@Europe/Berlin" for day in range(start.day, start.day + 5)]
    assert len({m["Message-ID"] for m in recorder.sent}) == 5


def test_second_instance_on_one_state_file_exits_7(tmp_path, store, run):
    with pytest.raises(LockError):
        SqliteStore(tmp_path / "state.db")
    config = tmp_path / "c.toml"
    config.write_text(
        '[[accounts]]\nname = "w"\nhost = "127.0.0.1"\nsecurity = "plain"\n'
        f'username = "me@x.example"\npassword = "p"\n[state]\n'
        f'path = "{tmp_path / "state.db"}"\n'
    )
    result = run("run", "--once", "--config", str(config))
    assert result.code == 7 and "another inboxwatch is using" in result.err


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_one_instance_per_state_file_whatever_path_names_it(tmp_path, store, run, link):
    # Two `run --once` sharing one state file through a link both ran and both sent the
    # period's digest: the lock must belong to the file, not to the path.
    other = tmp_path / "elsewhere" / "state.db"
    other.parent.mkdir()
    if link == "symlink":
        other.symlink_to(tmp_path / "state.db")
    else:
        os.link(tmp_path / "state.db", other)
    with pytest.raises(LockError):
        SqliteStore(other)
    config = tmp_path / "c.toml"
    config.write_text(
        '[[accounts]]\nname = "w"\nhost = "127.0.0.1"\nsecurity = "plain"\n'
        f'username = "me@x.example"\npassword = "p"\n[state]\npath = "{other}"\n'
    )
    result = run("run", "--once", "--config", str(config))
    assert result.code == 7 and "another inboxwatch is using" in result.err


def test_state_file_is_private(tmp_path, store):
    assert (tmp_path / "state.db").stat().st_mode & 0o777 == 0o600


def test_health_follows_the_polls(dovecot, sent_mailbox, tmp_path, store):
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    assert health(settings, T0) == (False, "work: no successful poll yet")
    poll_once(settings, store, Recorder(), T0)
    assert health(settings, T0 + 30 * timedelta(minutes=1))[0]
    assert not health(settings, T0 + 2 * H)[0]  # three 15-minute intervals have passed
    bad = settings.model_copy(
        update={"accounts": [settings.accounts[0].model_copy(update={"port": 1})]}
    )
    poll_once(bad, store, Recorder(), T0 + 2 * H)
    ok, reason = health(bad, T0 + 2 * H)
    assert not ok and "last error" in reason


def test_run_stops_cleanly_on_sigterm_mid_poll(dovecot, sent_mailbox, tmp_path):
    from tests.proxy import RecordingProxy

    for n in range(400):
        sent_mailbox.add(
            "INBOX", mail("Anna <anna@client.example>", subject=f"M{n}"), datetime.now(UTC) - 30 * H
        )
    with RecordingProxy(dovecot.port, delay=0.2) as proxy:  # a slow server: polls take long
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, port=proxy.port)
        config = tmp_path / "config.toml"
        config.write_text(
            f'[[accounts]]\nname = "work"\nhost = "127.0.0.1"\nport = {proxy.port}\n'
            f'security = "plain"\nusername = "{sent_mailbox.user}"\n'
            f'password = "{dovecot.password}"\naddresses = ["{OWNER}"]\n'
            f'[state]\npath = "{settings.state.path}"\n'
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "inboxwatch", "run", "--config", str(config)],
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while b"FETCH" not in proxy.client_bytes and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b"FETCH" in proxy.client_bytes, "the poll never started fetching"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
        stderr = process.stderr.read() if process.stderr else ""
    assert code == 0, stderr
    assert time.monotonic() - started < 10
    db = sqlite3.connect(Path(settings.state.path))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # The poll was abandoned mid-fetch and committed nothing half-way.
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    assert "stopping" in stderr and "poll abandoned" in stderr


def test_unchanged_10000_message_mailbox_is_not_fetched_again(
    dovecot, sent_mailbox, tmp_path, store
):
    from tests.proxy import RecordingProxy

    sent_mailbox.add("Sent", mail(OWNER, "x@y.example"), T0 - 72 * H)
    sent_mailbox.bulk(
        "INBOX",
        [
            (
                mail(f"Sender {n} <s{n}@client.example>", subject=f"Question {n}"),
                T0 - timedelta(minutes=2 * n + 60),
            )
            for n in range(10_000)
        ],
    )
    with RecordingProxy(dovecot.port) as proxy:
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, port=proxy.port)
        first = poll_once(settings, store, Recorder(), T0)
        # Two minutes apart: those of the last 24 hours are still inside the window.
        assert first.fetched == 10_001 and len(first.report.overdue) == 9_309
        before = len(proxy.client_bytes)
        second = poll_once(settings, store, Recorder(), T0 + timedelta(minutes=5))
        second_commands = bytes(proxy.client_bytes[before:]).decode()
    assert second.fetched == 0 and len(second.report.overdue) == 9_312
    assert "BODY.PEEK" not in second_commands and "FETCH" not in second_commands


def test_an_unchanged_poll_carries_the_report_forward_exactly(dovecot, sent_mailbox, tmp_path):
    from tests.proxy import RecordingProxy

    seed(sent_mailbox)
    sent_mailbox.add("INBOX", mail("Cy <cy@x.example>", subject="Young"), T0 - 20 * H)
    with RecordingProxy(dovecot.port) as proxy:
        settings = settings_for(
            dovecot, sent_mailbox.user, tmp_path, port=proxy.port, to=[]
        )  # no digest: polls only
        store = SqliteStore(settings.state.path_resolved())
        first = poll_once(settings, store, Recorder(), T0)
        assert [f.subject for f in first.report.waiting] == ["Young"]
        before = len(proxy.client_bytes)
        later = T0 + 5 * H  # "Young" has now waited 25 hours
        quick = poll_once(settings, store, Recorder(), later, previous=first.report)
        sent = bytes(proxy.client_bytes[before:]).decode()
        full = poll_once(settings, store, Recorder(), later)
        sent_mailbox.add("INBOX", mail("Di <di@x.example>", subject="Changed"), T0 - 30 * H)
        changed = poll_once(settings, store, Recorder(), later, previous=quick.report)
        store.close()
    assert "FETCH" not in sent and "SEARCH" not in sent and quick.fetched == 0
    assert [(f.thread_id, f.waiting_since) for f in quick.report.overdue] == [
        (f.thread_id, f.waiting_since) for f in full.report.overdue
    ]
    assert "Young" in {f.subject for f in quick.report.overdue}
    assert (quick.report.stats.overdue, quick.report.stats.pending) == (4, 0)
    assert changed.fetched == 1 and "Changed" in {f.subject for f in changed.report.overdue}


def test_run_refuses_a_digest_without_an_smtp_server(run, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[[accounts]]\nname = "w"\nhost = "127.0.0.1"\nsecurity = "plain"\n'
        'username = "me@x.example"\npassword = "p"\n[digest]\nto = ["me@x.example"]\n'
        f'[state]\npath = "{tmp_path / "state.db"}"\n'
    )
    result = run("run", "--once", "--config", str(config))
    assert result.code == 3 and "smtp.host is not set" in result.err


def test_a_service_keeping_parsed_mail_in_memory_sees_what_a_fresh_process_sees(
    dovecot, sent_mailbox, tmp_path
):
    from inboxwatch.service.sync import MemoryCache

    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path, to=[])
    store = SqliteStore(settings.state.path_resolved())
    memory = MemoryCache()
    client = sent_mailbox.client

    def both(when):
        kept = poll_once(settings, store, Recorder(), when, memory=memory)
        fresh_settings = settings_for(dovecot, sent_mailbox.user, tmp_path / f"f{when.hour}", to=[])
        fresh_store = SqliteStore(fresh_settings.state.path_resolved())
        fresh = poll_once(fresh_settings, fresh_store, Recorder(), when)
        fresh_store.close()
        key = lambda r: sorted((f.thread_id, f.uids, f.waiting_since) for f in r.overdue)  # noqa: E731
        assert key(kept.report) == key(fresh.report)
        return kept

    both(T0)
    reads: list[str] = []
    original = store.messages
    store.messages = lambda account, folder: reads.append(folder) or original(account, folder)
    sent_mailbox.add("INBOX", mail("Bo <bo@x.example>", subject="New"), T0 - 30 * H)
    assert both(T0 + H).fetched == 1  # the rest came from memory, not SQLite or the server
    assert reads == []
    client.select_folder("INBOX")
    client.add_flags([1], [b"\\Answered"])
    client.delete_messages([2])
    client.expunge()
    client.unselect_folder()
    both(T0 + 2 * H)
    # A thread whose middle message is archived: it splits in two, and only it is redone.
    chain = [("c1", None), ("c2", "<c1@client.example>"), ("c3", "<c2@client.example>")]
    for n, (mid, parent) in enumerate(chain):
        sender = "Bo <bo@client.example>" if mid == "c2" else "Anna <anna@client.example>"
        text = mail(sender, subject="Contract", mid=f"<{mid}@client.example>", in_reply_to=parent)
        sent_mailbox.add("INBOX", text, T0 - (50 - n) * H)
    assert {f.thread_id for f in both(T0 + 3 * H).report.overdue} >= {"<c1@client.example>"}
    client.create_folder("Archive")
    client.select_folder("INBOX")
    client.move(client.search(["HEADER", "Message-ID", "<c2@client.example>"]), "Archive")
    client.unselect_folder()
    split = {f.thread_id for f in both(T0 + 4 * H).report.overdue}
    assert {"<c1@client.example>", "<c2@client.example>"} <= split
    # Your message, then Anna's answer on its subject without linking headers: the subject
    # fallback joins them (core.reach), which the service's poll must see as a scan does.
    terms = mail(OWNER, "Anna <anna@client.example>", "Terms", mid="<t1@m.example>")
    sent_mailbox.add("Sent", terms, T0 - 60 * H)
    both(T0 + 5 * H)
    sent_mailbox.add("INBOX", mail("Anna <anna@client.example>", subject="Re: Terms"), T0 - 59 * H)
    joined = both(T0 + 6 * H).report.overdue
    assert [f.thread_id for f in joined if f.subject == "Re: Terms"] == ["<t1@m.example>"]
    dovecot.doveadm("mailbox", "update", "-u", sent_mailbox.user, "--uid-validity", "4242", "INBOX")
    both(T0 + 7 * H)
    store.close()


def test_a_poll_after_new_mail_searches_only_the_new_uids(
    dovecot, sent_mailbox, tmp_path, store, no_qresync
):
    from tests.proxy import RecordingProxy

    seed(sent_mailbox)
    with RecordingProxy(dovecot.port) as proxy:
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, port=proxy.port)
        poll_once(settings, store, Recorder(), T0)
        before = len(proxy.client_bytes)
        sent_mailbox.add("INBOX", mail("Bo <bo@x.example>", subject="New"), T0 - 30 * H)
        result = poll_once(settings, store, Recorder(), T0 + H)
        sent = bytes(proxy.client_bytes[before:]).decode()
    searches = [line for line in sent.split("\r\n") if " SEARCH " in line]
    assert result.fetched == 1 and "New" in [f.subject for f in result.report.overdue]
    # The message count grew by exactly the new UIDs: no search of the whole lookback.
    assert any(" SEARCH UID 4:*" in line for line in searches), searches
    assert not any("SINCE" in line for line in searches), searches


def change_inbox(box) -> None:
    """Another client: Q0 answered from the phone, a label on Q2, Q1 deleted; new mail, and
    mail older than the lookback moved in from an archive (its INTERNALDATE kept)."""
    other = box.client
    other.select_folder("INBOX")
    other.add_flags([1], [b"\\Answered"])
    other.add_flags([3], [b"$Label"])
    other.add_flags([2], [b"\\Deleted"])
    other.expunge()
    other.unselect_folder()
    box.add("INBOX", mail("Bo <bo@x.example>", subject="New"), T0 - 30 * H)
    old = mail("Cy <cy@x.example>", subject="Old", date=T0 - timedelta(days=400))
    box.add("INBOX", old, T0 - timedelta(days=400))


def test_a_poll_after_an_expunge_finds_what_went_by_uid_not_by_date(
    dovecot, sent_mailbox, tmp_path, store, no_qresync
):
    """Without QRESYNC, which cached messages went is asked by UID: the date search it replaced cost
    Dovecot 0.2-0.3 s at 60,000 messages. Mail older than the lookback that arrives
    meanwhile (moved in from an archive, its INTERNALDATE kept) stays out."""
    from tests.proxy import RecordingProxy

    seed(sent_mailbox)
    with RecordingProxy(dovecot.port) as proxy:
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, port=proxy.port)
        poll_once(settings, store, Recorder(), T0)
        before = len(proxy.client_bytes)
        change_inbox(sent_mailbox)
        result = poll_once(settings, store, Recorder(), T0 + H)
        sent = bytes(proxy.client_bytes[before:]).decode()
    searches = [line for line in sent.split("\r\n") if " SEARCH " in line]
    assert sorted(f.subject for f in result.report.overdue) == ["New", "Q2"]
    assert sorted(store.messages("work", "INBOX")) == [1, 3, 4]
    assert any(" SEARCH UID 1:3" in line for line in searches), searches
    assert not any("SINCE" in line for line in searches), searches


def without_recent(messages: dict[int, MessageMeta]) -> dict[int, MessageMeta]:
    """\\Recent is per session (RFC 3501 2.3.2): a fresh session sees it on other messages."""
    return {u: m._replace(flags=m.flags - {"\\Recent"}) for u, m in messages.items()}


def test_qresync_tells_a_polls_changes_with_the_examine(dovecot, sent_mailbox, tmp_path, store):
    """RFC 7162 3.2: `EXAMINE "INBOX" (QRESYNC (uidvalidity modseq))` answers which UIDs
    vanished and the flags of every message changed since, new ones too: no SEARCH and
    no FETCH of flags of its own, and the cache ends as a fresh read of the mailbox."""
    from tests.proxy import RecordingProxy

    seed(sent_mailbox)
    with RecordingProxy(dovecot.port) as proxy:
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, port=proxy.port)
        poll_once(settings, store, Recorder(), T0)
        known = store.folder("work", "INBOX")
        before = len(proxy.client_chunks)
        change_inbox(sent_mailbox)
        result = poll_once(settings, store, Recorder(), T0 + H)
        chunks = [c.decode() for c in proxy.client_chunks[before:]]
    lines = [line.split(" ", 1)[1] for c in chunks for line in c.split("\r\n") if line]
    assert f'EXAMINE "INBOX" (QRESYNC ({known.uidvalidity} {known.modseq}))' in lines, lines
    assert not [line for line in lines if "SEARCH" in line or "CHANGEDSINCE" in line], lines
    fetches = [line for line in lines if "FETCH" in line and "HEADER.FIELDS" in line]
    assert len(fetches) == 1 and fetches[0].startswith("UID FETCH 4:5 "), lines  # the new
    # ENABLE once, in LOGIN's write (RFC 5161 3.1: authenticated, before any EXAMINE).
    [enabling] = [c for c in chunks if "ENABLE QRESYNC" in c]
    assert " LOGIN " in enabling and ' LIST "" ' in enabling
    assert sum("ENABLE" in line for line in lines) == 1
    assert not [line for line in lines if "(CONDSTORE)" in line], lines  # all QRESYNC
    assert result.fetched == 1  # New; Old is older than the lookback
    assert sorted(f.subject for f in result.report.overdue) == ["New", "Q2"]
    cached = store.messages("work", "INBOX")
    assert sorted(cached) == [1, 3, 4]
    assert "\\Answered" in cached[1].flags and "$Label" in cached[3].flags
    fresh = SqliteStore(tmp_path / "fresh.db")
    try:
        direct = settings_for(dovecot, sent_mailbox.user, tmp_path)  # the proxy is gone
        again = poll_once(direct, fresh, Recorder(), T0 + H)
        assert not again.report.errors, again.report.errors
        assert without_recent(fresh.messages("work", "INBOX")) == without_recent(cached)
    finally:
        fresh.close()


def kept_session_polls(dovecot, box, tmp_path, store, change):
    """A running service's first two polls, `change` made to the mailbox between them,
    through a recording proxy: the second's result, what the client wrote for it (one
    string a write) and INBOX's state before it."""
    from inboxwatch.service.poller import Poller
    from tests.proxy import RecordingProxy

    seed(box)
    with RecordingProxy(dovecot.port) as proxy:
        settings = settings_for(dovecot, box.user, tmp_path, port=proxy.port)
        poller = Poller(settings, store, Recorder(), memory=MemoryCache())
        try:
            poller.poll(T0)
            known = store.folder("work", "INBOX")
            before = len(proxy.client_chunks)
            change(box)
            result = poller.poll(T0 + H)
        finally:
            poller.close()
        return result, [c.decode() for c in proxy.client_chunks[before:]], known


def test_a_running_services_quick_check_asks_qresync(dovecot, sent_mailbox, tmp_path, store):
    """A session kept between polls enabled QRESYNC at its first: the next quick check's
    EXAMINEs carry it, and the folder it leaves selected is read from that answer."""

    def change(box) -> None:
        change_inbox(box)
        box.add("Sent", mail(OWNER, "x@y.example", subject="Note"), T0 - H)

    result, chunks, _ = kept_session_polls(dovecot, sent_mailbox, tmp_path, store, change)
    sent = "".join(chunks)
    lines = [line.split(" ", 1)[1] for line in sent.split("\r\n") if line]
    examines = [line for line in lines if line.startswith("EXAMINE")]
    assert len(examines) >= 2 and all("(QRESYNC (" in line for line in examines), lines
    assert not [line for line in lines if "SEARCH" in line or "CHANGEDSINCE" in line], lines
    assert "ENABLE" not in sent  # enabled at the session's first poll
    assert sorted(f.subject for f in result.report.overdue) == ["New", "Q2"]
    assert sorted(store.messages("work", "INBOX")) == [1, 3, 4]
    assert len(store.messages("work", "Sent")) == 2


def test_new_mail_is_fetched_in_the_examines_round_trip(dovecot, sent_mailbox, tmp_path, store):
    """A running service's quick check found INBOX changed (QRESYNC): the read sends INBOX's
    EXAMINE and a `UID FETCH <last UIDNEXT>:*` of the headers together, and QRESYNC's
    answer names which of what comes back are new: one round trip for both. The read's
    LIST went with the check's EXAMINEs."""
    result, chunks, known = kept_session_polls(dovecot, sent_mailbox, tmp_path, store, change_inbox)
    lists = [c for c in chunks if ' LIST "" ' in c]
    assert len(lists) == 1 and lists[0].count(" EXAMINE ") == 2, chunks
    [read] = [c for c in chunks if "HEADER.FIELDS" in c]
    assert f'EXAMINE "INBOX" (QRESYNC ({known.uidvalidity} {known.modseq}))' in read, chunks
    assert f" UID FETCH {known.uidnext}:* (" in read, chunks
    assert not [c for c in chunks if "SEARCH" in c or "CHANGEDSINCE" in c], chunks
    assert result.fetched == 1 and sorted(f.subject for f in result.report.overdue) == [
        "New",
        "Q2",
    ]
    cached = store.messages("work", "INBOX")
    fresh = SqliteStore(tmp_path / "fresh.db")
    try:
        poll_once(settings_for(dovecot, sent_mailbox.user, tmp_path), fresh, Recorder(), T0 + H)
        assert without_recent(fresh.messages("work", "INBOX")) == without_recent(cached)
    finally:
        fresh.close()


def test_a_flag_change_alone_is_read_from_the_examine(dovecot, sent_mailbox, tmp_path, store):
    """Only a flag changed: QRESYNC's answer to the EXAMINE tells it, and nothing is fetched
    (no headers: no UID was given since the last poll)."""

    def answered(box) -> None:
        box.client.select_folder("INBOX")
        box.client.add_flags([1], [b"\\Answered"])  # replied from the phone

    result, chunks, _ = kept_session_polls(dovecot, sent_mailbox, tmp_path, store, answered)
    assert not [c for c in chunks if " FETCH " in c or "SEARCH" in c], chunks
    assert result.fetched == 0 and sorted(f.subject for f in result.report.overdue) == [
        "Q1",
        "Q2",
    ]
    assert "\\Answered" in store.messages("work", "INBOX")[1].flags


def change_at_random(rng: random.Random, box, when: datetime, n: int) -> None:
    """One change another client might make: new mail (on a new subject or in a thread
    seen before), the owner's reply, a flag set or taken off, a message deleted."""
    client = box.client
    client.select_folder("INBOX")
    inbox = client.search(["ALL"])
    kind = rng.choice(
        ["mail", "reply", "answer", "flag", "unflag", "expunge"] if inbox else ["mail"]
    )
    mid = f"<r{n}@x.example>"
    if kind == "mail":
        earlier = f"<r{rng.randrange(n)}@x.example>" if n and rng.random() < 0.5 else None
        message = mail(f"P{n % 3} <p{n % 3}@x.example>", subject=f"R{n % 4}", mid=mid,
                       in_reply_to=earlier, references=(earlier,) if earlier else ())  # fmt: skip
        box.add("INBOX", message, when - rng.randrange(1, 50) * H)
    elif kind == "reply":
        asked = f"<r{rng.randrange(max(n, 1))}@x.example>"
        reply = mail(OWNER, "p1@x.example", "Re: R1", mid=mid, in_reply_to=asked)
        box.add("Sent", reply, when - rng.randrange(1, 20) * H)
    elif kind in ("answer", "flag", "unflag"):
        flag = {"answer": b"\\Answered", "flag": b"$Label", "unflag": b"\\Answered"}[kind]
        uid = [rng.choice(inbox)]
        client.remove_flags(uid, [flag]) if kind == "unflag" else client.add_flags(uid, [flag])
    else:
        client.add_flags([rng.choice(inbox)], [b"\\Deleted"])
        client.expunge()
    client.unselect_folder()


def test_random_changes_read_by_qresync_match_a_fresh_read(dovecot, sent_mailbox, tmp_path, store):
    """A running service that reads its changes by QRESYNC (and new mail with the EXAMINE)
    ends each poll where a fresh read of the whole mailbox does: the same cache, the same
    findings, over rounds of random changes."""
    from inboxwatch.service.poller import Poller

    rng = random.Random(2112)
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    poller = Poller(settings, store, Recorder(), memory=MemoryCache())
    try:
        poller.poll(T0)
        changes = 0
        for round_ in range(10):
            now = T0 + (round_ + 1) * H
            for _ in range(rng.randint(1, 3)):
                change_at_random(rng, sent_mailbox, now, changes)
                changes += 1
            kept = poller.poll(now)
            fresh = SqliteStore(tmp_path / f"fresh-{round_}.db")
            try:
                again = poll_once(settings, fresh, Recorder(), now)
                for folder in ("INBOX", "Sent"):
                    ours = without_recent(store.messages("work", folder))
                    assert ours == without_recent(fresh.messages("work", folder)), round_
            finally:
                fresh.close()
            found = [(f.thread_id, f.subject) for f in kept.report.overdue + kept.report.waiting]
            want = [(f.thread_id, f.subject) for f in again.report.overdue + again.report.waiting]
            assert sorted(found) == sorted(want), round_
    finally:
        poller.close()


def test_a_cron_run_after_new_mail_lists_with_its_login_and_asks_qresync(
    dovecot, sent_mailbox, tmp_path, store
):
    """`run --once` (a process a poll) logs in once: the quick check's session reads too,
    with the LIST sent with the LOGIN, and the check's EXAMINEs carry QRESYNC (enabled
    with the LOGIN): the changed folder (Sent, the check's last) is read from the check's
    answer, with no LIST, SEARCH or EXAMINE more."""
    from tests.proxy import RecordingProxy

    seed(sent_mailbox)
    with RecordingProxy(dovecot.port) as proxy:
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, port=proxy.port)
        poll_once(settings, store, Recorder(), T0, keep_report=True)
        before = len(proxy.client_chunks)
        sent_mailbox.add(
            "Sent", mail(OWNER, "anna@client.example", in_reply_to="<q0@client.example>"), T0 - H
        )
        result = poll_once(settings, store, Recorder(), T0 + H, keep_report=True)
        chunks = [c.decode() for c in proxy.client_chunks[before:]]
    lines = [line.split(" ", 1)[1] for c in chunks for line in c.split("\r\n") if line]
    [login] = [c for c in chunks if " LOGIN " in c]  # one session: the check's, then the read's
    assert ' LIST "" ' in login and "ENABLE QRESYNC" in login
    assert sum(line.startswith("LIST") for line in lines) == 1, lines
    examines = [line for line in lines if line.startswith("EXAMINE")]
    assert len(examines) == 2 and all("(QRESYNC (" in line for line in examines), lines
    assert not [line for line in lines if "SEARCH" in line], lines
    assert result.fetched == 1 and sorted(f.subject for f in result.report.overdue) == ["Q1", "Q2"]


def test_a_login_listing_is_not_used_once_it_is_old(dovecot, sent_mailbox, monkeypatch):
    """The LIST sent with the LOGIN serves a read within imap.selection.FRESH seconds (the
    read after a quick check); a session kept for a later poll lists again: the folders
    may have changed meanwhile."""
    from inboxwatch.imap import selection, source
    from inboxwatch.imap.login import Secret
    from tests.proxy import RecordingProxy

    with RecordingProxy(dovecot.port) as proxy:
        account = Account(
            name="work", host="127.0.0.1", port=proxy.port, security="plain",
            username=sent_mailbox.user, addresses=[OWNER],
        )  # fmt: skip
        fresh = source.ImapSource(account, Secret(dovecot.password))
        kept = source.ImapSource(account, Secret(dovecot.password))
        try:
            sent_mailbox.client.create_folder("Projects")
            assert "Projects" not in {f.name for f in fresh.list_folders()}  # from its LOGIN
            monkeypatch.setattr(selection, "FRESH", 0.0)
            assert "Projects" in {f.name for f in kept.list_folders()}
        finally:
            fresh.close()
            kept.close()
        commands = proxy.commands()
    assert commands.count("LIST") == 3, commands


def test_an_expunge_hidden_by_an_append_is_still_seen(dovecot, sent_mailbox, tmp_path, store):
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    assert len(poll_once(settings, store, Recorder(), T0).report.overdue) == 3
    other = sent_mailbox.client
    other.select_folder("INBOX")
    other.add_flags([1], [b"\\Deleted"])
    other.expunge()  # the count falls by one ...
    sent_mailbox.add("INBOX", mail("Bo <bo@x.example>", subject="New"), T0 - 30 * H)  # ... rises
    result = poll_once(settings, store, Recorder(), T0 + H)
    assert sorted(f.subject for f in result.report.overdue) == ["New", "Q1", "Q2"]
    assert sorted(store.messages("work", "INBOX")) == [2, 3, 4]


def test_a_changed_poll_logs_in_once_and_examines_each_folder_once(
    dovecot, sent_mailbox, tmp_path, store
):
    from inboxwatch.service.sync import MemoryCache
    from tests.proxy import RecordingProxy

    seed(sent_mailbox)
    with RecordingProxy(dovecot.port) as proxy:
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, port=proxy.port)
        memory = MemoryCache()
        first = poll_once(settings, store, Recorder(), T0, memory=memory)
        connections, before = proxy.connections, len(proxy.commands())
        sent_mailbox.add("INBOX", mail("Bo <bo@x.example>", subject="New"), T0 - 30 * H)
        second = poll_once(
            settings, store, Recorder(), T0 + H, previous=first.report, memory=memory
        )
        commands = proxy.commands()[before:]
    assert second.fetched == 1 and "New" in [f.subject for f in second.report.overdue]
    assert proxy.connections == connections + 1  # the quick check's session did the poll
    # INBOX changed: examined once by the quick check, reused by the poll; Sent once; and
    # INBOX once more to read the new pending message's body (core/refine.py), which is
    # kept: the next poll asks for it no more.
    assert commands.count("EXAMINE") == 3, commands


def test_an_idle_poll_asks_all_its_folders_in_one_write(dovecot, sent_mailbox, tmp_path, store):
    """The quick check's EXAMINEs go together (RFC 3501 5.5 runs them in order): an idle
    poll costs the account one round trip, not one a folder (0.1 s each at 100 ms RTT)."""
    from inboxwatch.service.sync import MemoryCache
    from tests.proxy import RecordingProxy

    seed(sent_mailbox)
    with RecordingProxy(dovecot.port) as proxy:
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, port=proxy.port)
        memory = MemoryCache()
        first = poll_once(settings, store, Recorder(), T0, memory=memory)
        before = len(proxy.client_chunks)
        idle = poll_once(settings, store, Recorder(), T0 + H, previous=first.report, memory=memory)
        written = proxy.client_chunks[before:]
    subjects = sorted(f.subject for f in first.report.overdue)
    assert idle.fetched == 0 and sorted(f.subject for f in idle.report.overdue) == subjects
    examining = [chunk for chunk in written if b" EXAMINE " in chunk]
    assert len(examining) == 1 and examining[0].count(b" EXAMINE ") == 2, written


def _cached_meta() -> MessageMeta:
    from inboxwatch.core.model import Address

    return MessageMeta(
        folder="INBOX",
        uid=7,
        message_id="<m@x>",
        in_reply_to=("<p@x>",),
        references=("<r@x>", "<p@x>"),
        subject="Grüße",
        sender=Address("Anna", "anna@client.example"),
        received=T0,
        date=None,
        to=(Address("", OWNER),),
        flags=frozenset({"\\Seen", "\\Answered"}),
        list_headers=True,
    )


def test_cached_messages_keep_their_stored_form_and_round_trip():
    """State files must still read in later versions: the row's form is fixed."""
    from inboxwatch.store.rows import meta_from_row, meta_to_row

    meta = _cached_meta()
    text = meta_to_row(meta)
    assert text == (
        '[7,"<m@x>",["<p@x>"],["<r@x>","<p@x>"],"Grüße",["Anna","anna@client.example"],'
        f'"2026-11-24T09:00:00+00:00",null,[],[["","{OWNER}"]],[],["\\\\Answered","\\\\Seen"],'
        '"","",true,"",false,false,false]'
    )
    assert meta_from_row("INBOX", text) == meta
    gmail = meta._replace(provider_id="1278455344230334865", thread_hint="1266894439832287888")
    assert meta_from_row("INBOX", meta_to_row(gmail)) == gmail
    machine = meta._replace(list_id=True, machine="bulk:X-Mailer")
    assert meta_from_row("INBOX", meta_to_row(machine)) == machine
    # Read back, equal values are one object each, as the parser shares them.
    again = meta_from_row("INBOX", meta_to_row(meta._replace(uid=8)))
    first = meta_from_row("INBOX", text)
    assert again.to is first.to and again.folder is first.folder and again.sender is first.sender


def test_cached_rows_are_the_json_earlier_versions_wrote_and_read():
    """Rows are encoded by orjson (a fifth of json's time) and read by it: the same JSON
    both ways, so a cache written before reads now, and one written now reads with json."""
    import json

    from inboxwatch.store import rows
    from inboxwatch.store.rows import meta_from_row, meta_to_row

    tricky = ['é"\\\n\x00\u2028\U0001f600', None, True, False, 0, -7, 2**40, [], {}]
    for row in ([1, *tricky, [("a", "b")]], [[["x", ""]], ["\\Seen"]], tricky[::-1]):
        written = rows._encode(row)
        assert json.loads(written) == json.loads(json.dumps(row, ensure_ascii=False))
    meta = MessageMeta(
        "INBOX", 7, "<a@x>", ("<p@x>",), ("<r@x>", "<p@x>"), 'Grüße "quoted" \u2028',
        Address("Zoë", "zoe@x.example"), datetime(2026, 11, 3, 9, 30, 15, 123456, tzinfo=UTC),
    )  # fmt: skip
    by_json = json.dumps(json.loads(meta_to_row(meta)), ensure_ascii=False)  # as json wrote it
    assert meta_from_row("INBOX", by_json) == meta


def test_cached_rows_of_earlier_versions_read_as_parsing_gives_them_now():
    """Rows were JSON objects before they were arrays, and kept the whole Content-Type;
    ids come back shared, as parse.py shares them."""
    from inboxwatch.store.rows import meta_from_row

    earlier = (
        '{"folder":"INBOX","uid":7,"message_id":"<m@x>","in_reply_to":["<p@x>"],'
        '"references":["<r@x>","<p@x>"],"subject":"Grüße","sender":{"name":"Anna",'
        '"address":"anna@client.example"},"received":"2026-11-24T09:00:00+00:00","date":null,'
        f'"reply_to":[],"to":[{{"name":"","address":"{OWNER}"}}],"cc":[],'
        '"flags":["\\\\Answered","\\\\Seen"],"auto_submitted":"","precedence":"",'
        '"list_headers":true,"content_type":"","null_sender":false,"autoreply_header":false,'
        '"sender_ambiguous":false}'
    )
    assert meta_from_row("INBOX", earlier) == _cached_meta()
    row = (
        '{"folder":"INBOX","uid":7,"message_id":"<m@x>","in_reply_to":["<p@x>"],'
        '"references":["<r@x>","<p@x>"],"subject":"x","sender":null,'
        '"received":"2026-11-24T09:00:00+00:00","date":null,"reply_to":[],"to":[],"cc":[],'
        '"flags":[],"auto_submitted":"","precedence":"","list_headers":false,'
        '"content_type":"multipart/report; report-type=delivery-status","null_sender":false,'
        '"autoreply_header":false,"sender_ambiguous":false}'
    )
    meta = meta_from_row("INBOX", row)
    assert meta.content_type == "multipart/report"
    assert meta.in_reply_to[0] is meta.references[1]


@pytest.mark.parametrize("mode", ["service", "run-once"])
def test_a_clock_jump_a_year_ahead_and_back_keeps_overdue_threads(
    dovecot, sent_mailbox, tmp_path, store, caplog, mode
):
    """Issue 22, defect 1: a poll with the clock a year ahead aged the whole cache out;
    after the clock came back every poll said 0 overdue, silently."""
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    memory = MemoryCache() if mode == "service" else None
    keep = mode == "run-once"
    result = poll_once(settings, store, Recorder(), T0, memory=memory, keep_report=keep)
    assert len(result.report.overdue) == 3
    ahead = poll_once(
        settings, store, Recorder(), T0 + 365 * 24 * H, memory=memory, keep_report=keep
    )
    assert ahead.report.overdue == []  # a year on, the threads are out of the lookback
    caplog.clear()
    previous = None if keep else ahead.report  # what a running service carries
    back = poll_once(
        settings, store, Recorder(), T0 + H, memory=memory, previous=previous, keep_report=keep
    )
    assert len(back.report.overdue) == 3
    assert back.fetched == 4  # judged from a full read, not from what the cache lost
    assert any(
        r.levelno == logging.WARNING and "clock" in r.getMessage() and "work" in r.getMessage()
        for r in caplog.records
    )
    again = poll_once(settings, store, Recorder(), T0 + 2 * H, memory=memory, keep_report=keep)
    assert len(again.report.overdue) == 3 and again.fetched == 0


def test_a_clock_gone_back_does_not_back_off_for_a_year(dovecot, sent_mailbox, tmp_path, store):
    """A failure recorded with the clock ahead must not hold the account back until then."""
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    store.record_poll("work", T0 + 365 * 24 * H, "connection refused", 5, None)
    store.record_poll("work", T0 + 365 * 24 * H, "connection refused", 5, None)
    result = poll_once(settings, store, Recorder(), T0)
    assert len(result.report.overdue) == 3 and not result.report.errors


def test_a_failed_full_read_after_a_clock_jump_is_tried_again():
    """The jump is judged from the last success, which a failed poll leaves alone."""
    plan = plan_of(Account(name="w", host="h", username="u", password="p", addresses=[OWNER]))
    year = 365 * 24 * H
    back = PollRecord("w", T0, T0 + year, "connection refused", 5, 1)  # failed since
    assert clock_jump(back, plan, T0 + H) is not None
    assert clock_jump(PollRecord("w", T0, T0, None, None, 0), plan, T0 + H) is None
    assert (
        clock_jump(PollRecord("w", T0, T0, None, None, 0), plan, T0 - timedelta(minutes=4)) is None
    )
    assert "more than the lookback" in (clock_jump(back, plan, T0 + 2 * year) or "")


class FailingFor(Recorder):
    """Refuses mail to one recipient (that digest's SMTP delivery fails)."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    def send(self, msg: EmailMessage) -> None:
        if self.refused in str(msg["To"]):
            raise DeliveryError(f"{self.refused} refused")
        super().send(msg)


def test_an_accounts_digest_to_gets_its_own_digest_once_each(
    dovecot, sent_mailbox, tmp_path, store
):
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    shared = settings.accounts[0].model_copy(
        update={"name": "shared", "digest_to": ["Lead <lead@example.com>"]}
    )
    settings = settings.model_copy(update={"accounts": [settings.accounts[0], shared]})
    # The lead's delivery fails: the owner's digest still goes, the lead's stays owed.
    with pytest.raises(DeliveryError, match="lead"):
        poll_once(settings, store, (first := FailingFor("lead@")), T0)
    [own] = first.sent
    assert own["To"] == OWNER and own["Subject"] == "3 conversations waiting > 24h"  # not 6
    retry = Recorder()
    result = poll_once(settings, store, retry, T0 + H)
    assert result.digest == "2026-11-24T08:00@Europe/Berlin to Lead <lead@example.com>"
    [lead] = retry.sent
    assert lead["To"] == "Lead <lead@example.com>" and lead["Message-ID"] != own["Message-ID"]
    text = lead.get_body(("plain",)).get_content()
    assert lead["Subject"] == "3 conversations waiting > 24h" and "Q0" in text
    quiet = Recorder()
    poll_once(settings, store, quiet, T0 + 2 * H)
    assert not quiet.sent  # each digest once per period


def test_a_message_that_cannot_be_parsed_is_remembered_not_fetched_again(
    dovecot, sent_mailbox, tmp_path, store, monkeypatch
):
    """Issue 21, item 5: a parse failure is kept by UID (and UIDVALIDITY) and reported at
    every poll, but fetched again only when the folder is read afresh."""
    from inboxwatch.core.model import ParseFailure
    from inboxwatch.imap import headerfetch

    parse = headerfetch.parse_headers

    def broken_on_purpose(header, folder, uid, *args, **kwargs):
        if b"Subject: Broken" in header:
            return ParseFailure(folder, uid, "unparsable header block")
        return parse(header, folder, uid, *args, **kwargs)

    monkeypatch.setattr(headerfetch, "parse_headers", broken_on_purpose)
    seed(sent_mailbox)
    sent_mailbox.add("INBOX", mail("Eve <eve@x.example>", subject="Broken"), T0 - 30 * H)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    first = poll_once(settings, store, Recorder(), T0)
    assert first.fetched == 5 and [e.uid for e in first.report.errors if e.kind == "parse"] == [4]
    # An expunge makes the next poll search the whole lookback (the message count says
    # something went): the broken message is known, only the new one is fetched.
    client = sent_mailbox.client
    client.select_folder("INBOX")
    client.delete_messages([1])
    client.expunge()
    sent_mailbox.add("INBOX", mail("Bo <bo@x.example>", subject="New"), T0 - 26 * H)
    second = poll_once(settings, store, Recorder(), T0 + H)
    assert second.fetched == 1
    assert [e.uid for e in second.report.errors if e.kind == "parse"] == [4]
    client.select_folder("INBOX")
    client.delete_messages([4])
    client.expunge()
    third = poll_once(settings, store, Recorder(), T0 + 2 * H)
    assert not [e for e in third.report.errors if e.kind == "parse"]


def test_a_team_digest_goes_to_the_lead_on_its_own_schedule(dovecot, sent_mailbox, tmp_path, store):
    """Issue 23, item 4: [[digests]] sends the lead one e-mail for the accounts named, on
    its schedule, beside each person's own digest; each once per its own period."""
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    other = settings.accounts[0].model_copy(update={"name": "shared"})
    settings = Settings(
        **{
            **settings.model_dump(),
            "accounts": [settings.accounts[0].model_dump(), other.model_dump()],
            "digests": [
                {"accounts": ["shared"], "to": ["Lead <lead@example.com>"], "schedule": "0 9 * * *"}
            ],
        }
    )
    first = Recorder()
    poll_once(settings, store, first, T0 - 2 * H)  # 08:00 Berlin: each owes its latest
    assert [m["To"] for m in first.sent] == [OWNER, "Lead <lead@example.com>"]
    assert "6 conversations" in first.sent[0]["Subject"]  # both accounts: the owner's
    quiet = Recorder()
    poll_once(settings, store, quiet, T0 - 1.5 * H)  # 08:30: both sent for their periods
    assert not quiet.sent
    late = Recorder()
    result = poll_once(settings, store, late, T0)  # 10:00: the team's 09:00 is due
    [team] = late.sent
    assert team["To"] == "Lead <lead@example.com>"
    assert team["Subject"] == "3 conversations waiting > 24h"  # the shared account's alone
    assert result.digest == "2026-11-24T09:00@Europe/Berlin to Lead <lead@example.com> [shared]"
    again = Recorder()
    poll_once(settings, store, again, T0 + H)
    assert not again.sent
