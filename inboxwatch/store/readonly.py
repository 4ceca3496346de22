"""Reading the state file beside a running service, which holds its lock: read-only,
through a connection of its own (`health` reads the polls, `scan` the snooze notes)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from inboxwatch.errors import CorruptState

T = TypeVar("T")


def connect_readonly(path: Path, **options: Any) -> sqlite3.Connection:
    """A connection that can only read the file, beside the service's own."""
    db: sqlite3.Connection = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, **options
    )
    return db


def read_unlocked(path: Path, read: Callable[[sqlite3.Connection], T], empty: T) -> T:
    """`read` on the file, or `empty` where there is no file yet, or not yet the table it
    reads (a state file nothing has written that part of)."""
    path = path.expanduser()
    if not path.exists():
        return empty
    db = connect_readonly(path)
    try:
        return read(db)
    except sqlite3.OperationalError:
        return empty
    except (sqlite3.DatabaseError, ValueError) as exc:  # ValueError: a row that won't decode
        raise CorruptState(
            f"state.path {path} is damaged ({exc}); the next `inboxwatch run` moves it "
            "aside and rebuilds it, or run `inboxwatch repair`"
        ) from None
    finally:
        db.close()
