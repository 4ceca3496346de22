"""Writing to the state file beside a running service (`snooze`, `mute`, `unsnooze`).

The service holds the file's lock for as long as it runs; these commands write through
a connection of their own (SQLite's own locking keeps the two apart), and the service
reads the result at its next poll. Without a running service the file is opened
(created, migrated) the usual way first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from inboxwatch.errors import LockError, StateError
from inboxwatch.store.faults import state_error
from inboxwatch.store.sqlite import SqliteStore

T = TypeVar("T")


def write_beside(path: Path, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run `work` on the state file, whether or not a service holds it."""
    path = path.expanduser()
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
