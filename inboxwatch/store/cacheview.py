"""The state file's cache read beside a running service, which holds the file's lock:
a read-only connection of its own (SQLite keeps the two apart), for `explain` and
`snooze` (service/reuse.py). Its reads are SqlState's; it cannot write."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from inboxwatch.errors import InboxwatchError
from inboxwatch.store.faults import state_error
from inboxwatch.store.readonly import connect_readonly
from inboxwatch.store.sqlstate import SqlState


class CacheView(SqlState):
    db: sqlite3.Connection

    def __init__(self, path: Path) -> None:
        self.mutex = threading.RLock()
        self.path = path
        self.db = connect_readonly(path, check_same_thread=False, isolation_level=None)
        # One read transaction for the command's length: every read sees one snapshot
        # (WAL), so a folder's state and its messages are of the same poll even while
        # the service commits the next one.
        self.db.execute("BEGIN")

    def fault(self, exc: Exception) -> InboxwatchError | None:
        return state_error(self.path, exc) if isinstance(exc, sqlite3.Error) else None

    def where(self) -> str:
        return f"state file {self.path}"

    def close(self) -> None:
        self.db.close()
