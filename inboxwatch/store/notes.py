"""Snooze and mute notes (core/snooze.py) in the state database: the SQL. The commands
write them with store/beside.py, beside a running service; it reads them each poll."""

from __future__ import annotations

import json
from datetime import datetime

from inboxwatch.core.snooze import Snooze
from inboxwatch.store.rows import Db

TABLE = (
    "CREATE TABLE snoozes (message_id TEXT PRIMARY KEY, account TEXT NOT NULL,"
    " thread_id TEXT NOT NULL, subject TEXT NOT NULL, pending TEXT NOT NULL,"
    " until TEXT, created TEXT NOT NULL)"
)


def rows(db: Db) -> list[Snooze]:
    found = db.execute(
        "SELECT message_id, account, thread_id, subject, pending, until, created FROM snoozes"
        " ORDER BY created"
    ).fetchall()
    return [
        Snooze(
            mid,
            account,
            thread,
            subject,
            tuple(json.loads(pending)),
            datetime.fromisoformat(until) if until else None,
            datetime.fromisoformat(created),
        )
        for mid, account, thread, subject, pending, until, created in found
    ]


def insert(db: Db, note: Snooze) -> None:
    db.execute(
        "INSERT OR REPLACE INTO snoozes VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            note.message_id, note.account, note.thread_id, note.subject,
            json.dumps(list(note.pending)),
            note.until.isoformat() if note.until else None, note.created.isoformat(),
        ),
    )  # fmt: skip


def delete(db: Db, message_id: str) -> bool:
    """The note named by `message_id`, or the note of the thread it names."""
    done = db.execute(
        "DELETE FROM snoozes WHERE message_id = ? OR thread_id = ?", (message_id, message_id)
    )
    return done.rowcount > 0
