"""The state in PostgreSQL (`[state] url`, issue 23 item 1) end to end: a real PostgreSQL
started by the tests (tests/postgres.py), Dovecot, and the commands that use the state."""

from __future__ import annotations

from datetime import timedelta

import pytest

from inboxwatch.config import Settings, State
from inboxwatch.store.beside import open_store
from inboxwatch.store.postgres import PostgresStore
from tests.conftest import mail, write_config
from tests.integration.test_service import T0, Recorder, seed, settings_for
from tests.polling import poll_once

pytestmark = pytest.mark.dovecot
H = timedelta(hours=1)


def on_postgres(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"state": State(url=url)})


def test_polls_and_the_digest_ledger_live_in_postgres(dovecot, sent_mailbox, tmp_path, postgres):
    seed(sent_mailbox)
    url = postgres.new_database()
    settings = on_postgres(settings_for(dovecot, sent_mailbox.user, tmp_path), url)
    store = open_store(settings.state)
    try:
        first = poll_once(settings, store, (sent := Recorder()), T0)
        assert first.fetched == 4 and len(first.report.overdue) == 3
        assert first.digest == "2026-11-24T08:00@Europe/Berlin" and len(sent.sent) == 1
    finally:
        store.close()
    # A restart: the cache is there (nothing fetched again), the period's digest was sent.
    store = open_store(settings.state)
    try:
        sent_mailbox.add("INBOX", mail("Bo <bo@x.example>", subject="New"), T0 - 30 * H)
        again = poll_once(settings, store, (resent := Recorder()), T0 + H)
        assert again.fetched == 1 and again.digest is None and not resent.sent
        assert {f.subject for f in again.report.overdue} >= {"New"}
        assert store.polls()["work"].last_success == T0 + H
        assert not (tmp_path / "state.db").exists()  # nothing went to the file
    finally:
        store.close()


def test_services_on_one_database_are_replicas_and_the_commands_work_beside_them(
    run, tmp_path, dovecot, sent_mailbox, postgres
):
    """Unlike an SQLite file (exit 7), a database is shared: a second service is a replica
    that leases what it polls (test_replicas.py has three of them)."""
    seed(sent_mailbox)
    url = postgres.new_database()
    config = write_config(tmp_path, dovecot, sent_mailbox.user)
    config.write_text(config.read_text() + f'[state]\nurl = "{url}"\n')
    service = PostgresStore(url)  # as a running service holds it
    try:
        second = run("run", "--once", "--config", str(config))
        assert second.code == 0 and postgres.password not in second.err + second.out
        assert service.polls()["work"].last_success is not None
        leases = service.db.execute("SELECT holder FROM leases").fetchall()
        assert leases == [("",)]  # given back as the run ended: nobody waits a lease out
        # snooze, snoozed and scan work beside it, through the database.
        scan = run("scan", "--format", "json", "--as-of", T0.isoformat(), "--config", str(config))
        target = scan.json()["overdue"][0]["message_ids"][0]
        assert run("mute", target, "--config", str(config)).code == 0
        assert [n.message_id for n in service.snoozes()] == [target]
        listed = run("snoozed", "--config", str(config))
        assert target in listed.out
        check = run("check", "--config", str(config))
        assert postgres.password not in check.out + check.err
    finally:
        service.close()


def test_a_wrong_password_is_one_line_without_it(run, tmp_path, dovecot, mailbox, postgres):
    url = postgres.new_database().replace(postgres.password, "not-the-password")
    config = write_config(tmp_path, dovecot, mailbox.user)
    config.write_text(config.read_text() + f'[state]\nurl = "{url}"\n')
    result = run("run", "--once", "--config", str(config))
    assert result.code == 3 and "state.url postgresql://inboxwatch:****@127.0.0.1" in result.err
    assert "not-the-password" not in result.err and "Traceback" not in result.err
    assert "password authentication failed" in result.err


def test_an_owner_of_the_tables_from_a_newer_inboxwatch_is_refused(postgres):
    import psycopg

    url = postgres.new_database()
    PostgresStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO inboxwatch_schema VALUES (999)")
    with pytest.raises(Exception, match="newer inboxwatch"):
        PostgresStore(url)


def test_a_dropped_connection_fails_one_poll_and_the_next_connects_again(postgres):
    """A database restart or failover under a running service: the operation in flight is
    one line (StateError), the next poll's check opens the connection again."""
    import psycopg

    from inboxwatch.errors import StateError

    url = postgres.new_database()
    store = PostgresStore(url)
    try:
        store.record_poll("work", T0)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(StateError, match=r"state.url postgresql://inboxwatch:\*\*\*\*@"):
            store.record_poll("work", T0 + H)
        store.follow_path()
        store.record_poll("work", T0 + 2 * H)
        assert store.polls()["work"].last_success == T0 + 2 * H
    finally:
        store.close()
