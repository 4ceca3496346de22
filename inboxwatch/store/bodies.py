"""The little of a body read for closing messages and invitations (core/bodytext.py),
kept per message: a message's content never changes under its UID, so it is read once
(a poll with nothing new asks the server nothing)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from inboxwatch.core.bodytext import Details
from inboxwatch.store.rows import Db

# By UIDVALIDITY too: a folder read anew after it changed keeps the rows read since.
TABLE = (
    "CREATE TABLE bodies (account TEXT NOT NULL, folder TEXT NOT NULL,"
    " uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL, details TEXT NOT NULL,"
    " PRIMARY KEY (account, folder, uidvalidity, uid))"
)
Folder = tuple[str, str, int]  # account, folder, UIDVALIDITY
_QUERY = "SELECT uid, details FROM bodies WHERE account = ? AND folder = ? AND uidvalidity = ?"


def rows(db: Db, where: Folder, uids: Sequence[int]) -> dict[int, Details]:
    found: dict[int, Details] = {}
    for start in range(0, len(uids), 500):  # SQLite's limit on bound parameters
        chunk = list(uids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        for uid, data in db.execute(f"{_QUERY} AND uid IN ({marks})", (*where, *chunk)):
            found[uid] = Details(*json.loads(data))
    return found


def insert(db: Db, where: Folder, found: Mapping[int, Details]) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO bodies VALUES (?, ?, ?, ?, ?)",
        [(*where, uid, json.dumps(list(d), ensure_ascii=False)) for uid, d in found.items()],
    )


def forget(db: Db, where: Folder, expunged: Iterable[int]) -> None:
    """Rows of expunged messages, and of the folder's earlier UIDVALIDITYs."""
    account, folder, _ = where
    db.execute("DELETE FROM bodies WHERE account = ? AND folder = ? AND uidvalidity != ?", where)
    db.executemany(
        "DELETE FROM bodies WHERE account = ? AND folder = ? AND uid = ?",
        [(account, folder, uid) for uid in expunged],
    )


def forget_account(db: Db, account: str) -> None:
    db.execute("DELETE FROM bodies WHERE account = ?", (account,))
