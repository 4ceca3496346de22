"""The kept report's findings and conversations as rows (the SQL), so that `run --once`
changes only what a change touched (core.splice) and counts what it shows, where it
decoded and wrote again its whole report: at 100,000 messages 31,000 findings and 30,000
conversations, 22 MB, ~0.3 s to decode and ~0.2 s to write each run (issue 21).

The report's head (its figures) stays one row of `reports` (store.lastreport): a poll that
writes a folder drops it in the same transaction (store/sqlstate.py), so rows are never
read without the head they belong to. Rows stay as they were read: a finding kept waiting
is counted overdue once past due, as core.carried.advance moves it, and one kept overdue
past the lookback is not counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from inboxwatch.core.ports import KeptChange
from inboxwatch.store.rows import Db

log = logging.getLogger(__name__)

TABLES = (
    "CREATE TABLE kept_findings (account TEXT NOT NULL, thread TEXT NOT NULL,"
    " kind INTEGER NOT NULL, since INTEGER NOT NULL, due INTEGER NOT NULL,"
    " ids TEXT NOT NULL, row BLOB NOT NULL)",
    "CREATE INDEX kept_findings_thread ON kept_findings (account, thread)",
    # What a poll counts, read from the index alone (not the 19 MB of rows).
    "CREATE INDEX kept_findings_kind ON kept_findings (account, kind, since, due)",
    # A conversation has no thread id (core.model.Conversation): a splice takes out the
    # ones equal to those it read before, as ReplyStandard.add does; equal ones are counted.
    "CREATE TABLE kept_conversations (account TEXT NOT NULL, row TEXT NOT NULL,"
    " n INTEGER NOT NULL, PRIMARY KEY (account, row))",
)
_CHUNK = 500  # threads in one IN (...): well under SQLite's 32,766 parameters
_LIKE = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})


def save(db: Db, changes: Sequence[KeptChange], whole: bool) -> bool:
    """`changes` applied to the rows (all dropped first if `whole`); False where a
    conversation to take out is not kept (the rows no longer match their head)."""
    if whole:
        db.execute("DELETE FROM kept_findings")
        db.execute("DELETE FROM kept_conversations")
    matched = True
    for change in changes:
        threads = sorted(change.threads)
        for start in range(0, len(threads), _CHUNK):
            chunk = threads[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            db.execute(
                f"DELETE FROM kept_findings WHERE account = ? AND thread IN ({marks})",
                (change.account, *chunk),
            )
        db.executemany("INSERT INTO kept_findings VALUES (?, ?, ?, ?, ?, ?, ?)", change.findings)
        matched &= _count(db, change, whole)
    return matched


def _count(db: Db, change: KeptChange, whole: bool) -> bool:
    more = [(change.account, row, n) for row, n in change.conversations.items() if n > 0]
    db.executemany(
        "INSERT INTO kept_conversations VALUES (?, ?, ?)"
        + (
            ""
            if whole
            else " ON CONFLICT (account, row) DO UPDATE SET n = kept_conversations.n + excluded.n"
        ),
        more,
    )
    matched = True
    for row, n in change.conversations.items():
        if n < 0:
            found = db.execute(
                "UPDATE kept_conversations SET n = n + ? WHERE account = ? AND row = ? AND n >= ?",
                (n, change.account, row, -n),
            )
            matched &= found.rowcount == 1
            db.execute(
                "DELETE FROM kept_conversations WHERE account = ? AND row = ? AND n <= 0",
                (change.account, row),
            )
    if not matched:
        log.warning("%s: the kept report's conversations do not match it", change.account)
    return matched


def counts(db: Db, account: str, floor: int, now: int) -> tuple[int, int]:
    """Overdue at `now` (µs) and waiting, of the account's findings (lists 0 and 1: store.
    lastreport.LISTS); those kept overdue count from `floor` (µs) on (the lookback)."""
    row = db.execute(
        "SELECT COALESCE(SUM(CASE WHEN kind = 0 AND since >= ? OR kind = 1 AND due < ?"
        " THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN kind = 1 AND due >= ?"
        " THEN 1 ELSE 0 END), 0) FROM kept_findings WHERE account = ? AND kind <= 1",
        (floor, now, now, account),
    ).fetchone()
    return int(row[0]), int(row[1])


def findings(db: Db, near: tuple[str, str, str] | None) -> list[tuple[int, bytes]]:
    if near is None:
        rows = db.execute("SELECT kind, row FROM kept_findings")
    else:
        # LIKE: SQLite's ignores ASCII case, PostgreSQL's does not: more rows, never fewer.
        account, thread, message_id = near
        rows = db.execute(
            "SELECT kind, row FROM kept_findings WHERE account = ? AND kind <= 1"
            " AND (thread = ? OR ids LIKE ? ESCAPE '\\')",
            (account, thread, f"%{message_id.translate(_LIKE)}%"),
        )
    return [(int(kind), bytes(row)) for kind, row in rows]


def conversations(db: Db) -> list[tuple[str, str, int]]:
    rows = db.execute("SELECT account, row, n FROM kept_conversations")
    return [(str(account), str(row), int(n)) for account, row, n in rows]
