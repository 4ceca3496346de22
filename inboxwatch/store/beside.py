"""The state beside a running service: `snooze`, `mute`, `unsnooze` write notes, `scan`,
`explain` and `health` read notes, digest counts and poll records — while the service
holds the state. Which state is the config's: an SQLite file (`state.path`) or a
PostgreSQL database (`state.url`), and `open_store` opens it for the service itself.

SQLite: the service holds the file's lock for as long as it runs; these commands go
through a connection of their own (SQLite's own locking keeps the two apart), and the
service reads the result at its next poll. Without a running service the file is opened
(created, migrated) the usual way first. PostgreSQL: a connection of its own; the
database keeps the commands and the service's replicas apart.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from inboxwatch.config import State
from inboxwatch.core.model import PollRecord
from inboxwatch.core.snooze import Snooze
from inboxwatch.errors import LockError, StateError
from inboxwatch.store import notes, reminders
from inboxwatch.store.cacheview import CacheView
from inboxwatch.store.faults import state_error
from inboxwatch.store.readonly import read_unlocked
from inboxwatch.store.rows import Db
from inboxwatch.store.sqlite import SqliteStore
from inboxwatch.store.sqlstate import SqlState, poll_records

if TYPE_CHECKING:
    from inboxwatch.store.postgres import PostgresStore

T = TypeVar("T")


def open_store(state: State) -> SqlState:
    """The service's own store. SQLite: it takes the file's lock (a second service: exit
    7). PostgreSQL: shared by the service's replicas (store/leases.py)."""
    if state.url is not None:
        from inboxwatch.store.postgres import PostgresStore

        return PostgresStore(state.url.get_secret_value())
    return SqliteStore(state.path_resolved())


def read_beside(state: State, read: Callable[[Db], T], empty: T) -> T:
    """`read` on the state, read-only for a file; `empty` where nothing was written yet."""
    if state.url is None:
        return read_unlocked(state.path_resolved(), read, empty)
    with _beside_service(state.url.get_secret_value()) as store:
        return read(store.db)


def snoozes(state: State) -> list[Snooze]:
    return read_beside(state, notes.rows, [])


def digests_seen(state: State) -> reminders.Seen:
    return read_beside(state, reminders.counts, {})


def polls(state: State) -> dict[str, PollRecord]:
    """Poll records for `health`, which runs beside the service."""
    return read_beside(state, poll_records, {})


@contextmanager
def cache_beside(state: State) -> Iterator[SqlState | None]:
    """The state's cache to read beside a running service (service/reuse.py), or None
    where no state was written yet; read-only, and as one snapshot: a file's through
    store/cacheview.py, a database's in one transaction."""
    if state.url is not None:
        with _beside_service(state.url.get_secret_value()) as store, store.snapshot():
            yield store
        return
    path = state.path_resolved()
    if not path.exists():
        yield None
        return
    view = CacheView(path)
    try:
        yield view
    finally:
        view.close()


def write_beside(state: State, work: Callable[[Db], T]) -> T:
    """Run `work` in one transaction on the state, whether or not a service holds it."""
    if state.url is not None:
        with _beside_service(state.url.get_secret_value()) as store, store.transaction() as db:
            return work(db)
    return _write_file(state.path_resolved(), work)


@contextmanager
def _beside_service(url: str) -> Iterator[PostgresStore]:
    """The database beside the service: PostgreSQL keeps the two apart."""
    from inboxwatch.store.postgres import PostgresStore

    store = PostgresStore(url)
    try:
        yield store
    finally:
        store.close()


def _write_file(path: Path, work: Callable[[Db], T]) -> T:
    try:
        store = SqliteStore(path)  # creates and migrates the file where needed
    except LockError:
        store = None  # a running service has it, and has migrated it
    if store is not None:
        try:
            with store.transaction() as db:
                return work(db)
        finally:
            store.close()
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        result = work(db)
        db.execute("COMMIT")
        return result
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise StateError(
                "the running service is from an older inboxwatch: restart it, then try again"
            ) from None
        raise state_error(path, exc) from None
    finally:
        db.close()
