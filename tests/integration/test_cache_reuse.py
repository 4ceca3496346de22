"""`explain` and `snooze` through the service's cache (service/reuse.py): they fetch
only what arrived since the last poll, say what a full read says, and `explain` writes
nothing to the state."""

from __future__ import annotations

import hashlib
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from inboxwatch.errors import StateError
from tests.conftest import OWNER, mail, write_config
from tests.proxy import RecordingProxy

ANNA = "Anna Keller <anna@client.example>"
H = timedelta(hours=1)
NOW_UTC = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def box(sent_mailbox, now):
    box = sent_mailbox
    box.add("INBOX", mail(ANNA, subject="Quote", mid="<q1@c.example>"), now - 80 * H)
    reply = mail(OWNER, ANNA, "Re: Quote", mid="<r1@m.example>", in_reply_to="<q1@c.example>")
    box.add("Sent", reply, now - 70 * H)
    for n in range(20):  # mail the cache holds, which explain need not fetch again
        box.add("INBOX", mail(f"P{n} <p{n}@x.example>", subject=f"Note {n}"), now - 60 * H)
    return box


def config_through(
    proxy: RecordingProxy, tmp_path: Path, dovecot, user: str, url: str = "", **kw
) -> Path:
    config = write_config(tmp_path, dovecot, user, port=proxy.port, **kw)
    state = f'url = "{url}"' if url else f'path = "{tmp_path / "state.db"}"'
    with config.open("a") as out:
        out.write(f"\n[state]\n{state}\n")
    return config


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_explain_fetches_only_what_arrived_since_the_last_poll(run, tmp_path, dovecot, box, now):
    with RecordingProxy(dovecot.port) as proxy:
        config = config_through(proxy, tmp_path, dovecot, box.user)
        assert run("run", "--once", "--config", str(config)).code == 0
        later = mail(ANNA, subject="Re: Quote", mid="<q2@c.example>", in_reply_to="<r1@m.example>")
        box.add("INBOX", later, now - 30 * H)
        state = digest(tmp_path / "state.db")
        start = len(proxy.client_bytes)
        cached = run("explain", "q2@c.example", "--config", str(config))
        sent = bytes(proxy.client_bytes[start:]).decode("ascii", "replace")
        asof = ("--as-of", now.isoformat())  # a full read: the cache holds mail as of now
        full = run("explain", "q2@c.example", "--config", str(config), *asof)
    assert cached.code == 0, cached.err
    assert "work: thread <q1@c.example>, 3 message(s)" in cached.out
    assert "expects a reply: waiting   <q2@c.example>" in cached.out
    # The one new message's headers (UID 22, after the question and 20 notes), no more.
    assert re.findall(r"UID FETCH (\S+) \(BODY\.PEEK\[HEADER", sent) == ["22"], sent
    assert digest(tmp_path / "state.db") == state  # nothing written
    # The same thread, roles and verdict (its waits are told as of a moment apart).
    assert full.code == 0, full.err
    assert roles(full.out) == roles(cached.out) and "verdict: overdue" in full.out


def roles(out: str) -> list[str]:
    return [line for line in out.splitlines() if "verdict" not in line]


def test_explain_reads_in_full_where_the_cache_does_not_hold_the_lookback(
    run, tmp_path, dovecot, box, now
):
    with RecordingProxy(dovecot.port) as proxy:
        config = config_through(proxy, tmp_path, dovecot, box.user, lookback="10d")
        assert run("run", "--once", "--config", str(config)).code == 0
        config = config_through(proxy, tmp_path, dovecot, box.user, lookback="20d")
        start = len(proxy.client_bytes)
        result = run("explain", "q1@c.example", "--config", str(config))
        sent = bytes(proxy.client_bytes[start:]).decode("ascii", "replace")
    assert result.code == 0, result.err
    assert "work: thread <q1@c.example>, 2 message(s)" in result.out
    assert "SEARCH" in sent  # the lookback searched by date: a first read


def test_snooze_reads_through_the_cache_and_keeps_its_note(run, tmp_path, dovecot, box, now):
    later = mail(ANNA, subject="Re: Quote", mid="<q2@c.example>", in_reply_to="<r1@m.example>")
    box.add("INBOX", later, now - 30 * H)
    with RecordingProxy(dovecot.port) as proxy:
        config = config_through(proxy, tmp_path, dovecot, box.user)
        assert run("run", "--once", "--config", str(config)).code == 0
        box.add("INBOX", mail("Bo <bo@x.example>", subject="New"), now - 26 * H)
        start = len(proxy.client_bytes)
        until = (now + 48 * H).strftime("%Y-%m-%dT%H:%M")
        result = run("snooze", "q2@c.example", "--until", until, "--config", str(config))
        sent = bytes(proxy.client_bytes[start:]).decode("ascii", "replace")
        listed = run("snoozed", "--config", str(config))
    assert result.code == 0, result.err
    assert "snoozed until" in result.out and "Re: Quote" in result.out
    assert re.findall(r"UID FETCH (\S+) \(BODY\.PEEK\[HEADER", sent) == ["23"], sent
    assert "q2@c.example" in listed.out


def test_explain_through_a_postgresql_state_keeps_nothing(run, tmp_path, dovecot, box, postgres):
    """The state's database beside the service: the cache read, no body details kept."""
    import psycopg

    url = postgres.new_database()
    later = mail(ANNA, subject="Re: Quote", mid="<q2@c.example>", in_reply_to="<r1@m.example>")
    with RecordingProxy(dovecot.port) as proxy:
        config = config_through(proxy, tmp_path, dovecot, box.user, url=url)
        assert run("run", "--once", "--config", str(config)).code == 0
        box.add("INBOX", later, datetime.now(UTC) - 30 * H)
        with psycopg.connect(url) as db:
            before = db.execute("SELECT count(*) FROM bodies").fetchone()
        start = len(proxy.client_bytes)
        result = run("explain", "q2@c.example", "--config", str(config))
        sent = bytes(proxy.client_bytes[start:]).decode("ascii", "replace")
    assert result.code == 0, result.err
    assert "expects a reply: waiting   <q2@c.example>" in result.out
    assert re.findall(r"UID FETCH (\S+) \(BODY\.PEEK\[HEADER", sent) == ["22"], sent
    with psycopg.connect(url) as db:
        assert db.execute("SELECT count(*) FROM bodies").fetchone() == before


def test_the_cache_is_read_as_one_snapshot_while_the_service_commits(tmp_path):
    """A folder's state and its messages of one poll, even when the service commits the
    next between the two reads."""
    from inboxwatch.core.model import Address, MessageMeta
    from inboxwatch.core.ports import FolderState
    from inboxwatch.store.cacheview import CacheView
    from inboxwatch.store.sqlite import SqliteStore

    def meta(uid: int) -> MessageMeta:
        sender = Address("", "a@x.example")
        return MessageMeta("INBOX", uid, f"<{uid}@x>", (), (), "Hi", sender, NOW_UTC)

    store = SqliteStore(tmp_path / "state.db")  # the running service, holding the lock
    try:
        with store.transaction():
            store.save_folder("work", "INBOX", FolderState(7, 2, 5, 1), [meta(1)], [], True)
        view = CacheView(tmp_path / "state.db")
        try:
            assert view.folder("work", "INBOX") == FolderState(7, 2, 5, 1)
            with store.transaction():  # the next poll's commit
                store.save_folder("work", "INBOX", FolderState(7, 3, 6, 2), [meta(2)], [], False)
            assert sorted(view.messages("work", "INBOX")) == [1]
            assert view.folder("work", "INBOX") == FolderState(7, 2, 5, 1)
        finally:
            view.close()
        assert sorted(store.messages("work", "INBOX")) == [1, 2]
    finally:
        store.close()


def test_a_postgresql_cache_is_read_as_one_snapshot_while_a_replica_commits(postgres):
    """As from a file: the database's connection commits each statement, so a poll
    committed between two reads gave a folder's state of one poll and messages of the
    next."""
    from inboxwatch.config import State
    from inboxwatch.core.model import Address, MessageMeta
    from inboxwatch.core.ports import FolderState
    from inboxwatch.store.beside import cache_beside
    from inboxwatch.store.postgres import PostgresStore

    def meta(uid: int) -> MessageMeta:
        sender = Address("", "a@x.example")
        return MessageMeta("INBOX", uid, f"<{uid}@x>", (), (), "Hi", sender, NOW_UTC)

    url = postgres.new_database()
    store = PostgresStore(url)  # the running service
    try:
        with store.transaction():
            store.save_folder("work", "INBOX", FolderState(7, 2, 5, 1), [meta(1)], [], True)
        with cache_beside(State(url=url)) as view:
            assert view is not None
            assert view.folder("work", "INBOX") == FolderState(7, 2, 5, 1)
            with store.transaction():  # the next poll's commit
                store.save_folder("work", "INBOX", FolderState(7, 3, 6, 2), [meta(2)], [], False)
            assert sorted(view.messages("work", "INBOX")) == [1]
            assert view.folder("work", "INBOX") == FolderState(7, 2, 5, 1)
            with pytest.raises(StateError, match="read-only transaction"):
                view.record_poll("work", NOW_UTC)
            # Accounts are read side by side (core.fanout): from other threads too.
            found: list[FolderState | None] = []
            reader = threading.Thread(target=lambda: found.append(view.folder("work", "INBOX")))
            reader.daemon = True
            reader.start()
            reader.join(10)
            assert found == [FolderState(7, 2, 5, 1)], "another thread's read waited"
        assert sorted(store.messages("work", "INBOX")) == [1, 2]
    finally:
        store.close()
