"""Which overdue threads each sent digest listed (issue 19, item 4): the SQL. A thread's
count of digests is what the next digest shows and what `remind = "once"` stops at."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from inboxwatch.store.rows import Db

# One row per thread and digest period: a digest sent to several recipient groups (or
# resent after a crash) in one period counts once.
TABLE = (
    "CREATE TABLE reminders (account TEXT NOT NULL, thread_id TEXT NOT NULL,"
    " period TEXT NOT NULL, sent_at TEXT NOT NULL, PRIMARY KEY (account, thread_id, period))"
)
# Older rows are dropped: a thread that has been overdue this long is counted as listed
# from the first row kept (the lookback is at most months).
KEEP = timedelta(days=400)

Seen = dict[tuple[str, str], int]


def counts(db: Db) -> Seen:
    rows = db.execute(
        "SELECT account, thread_id, COUNT(*) FROM reminders GROUP BY account, thread_id"
    ).fetchall()
    return {(account, thread): int(n) for account, thread, n in rows}


def insert(db: Db, period: str, threads: Iterable[tuple[str, str]], now: datetime) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO reminders VALUES (?, ?, ?, ?)",
        [(account, thread, period, now.isoformat()) for account, thread in threads],
    )
    db.execute("DELETE FROM reminders WHERE sent_at < ?", ((now - KEEP).isoformat(),))
