"""Messages the parsers could not read (issue 21, item 5): the SQL. Kept by UID under the
folder's UIDVALIDITY, so a poll reports them again without fetching them again; a new
UIDVALIDITY, an expunge or a full read forgets them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from inboxwatch.store.bodies import Folder
from inboxwatch.store.rows import Db

TABLE = (
    "CREATE TABLE failures (account TEXT NOT NULL, folder TEXT NOT NULL,"
    " uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL, reason TEXT NOT NULL,"
    " PRIMARY KEY (account, folder, uid))"
)


def rows(db: Db, where: Folder) -> dict[int, str]:
    found = db.execute(
        "SELECT uid, reason FROM failures WHERE account = ? AND folder = ? AND uidvalidity = ?",
        where,
    ).fetchall()
    return {int(uid): str(reason) for uid, reason in found}


def save(
    db: Db,
    where: Folder,
    found: Mapping[int, str],
    gone: Iterable[int],
    replace: bool,
) -> None:
    """The folder's failures now: `found` added, `gone` dropped; all of them first when
    the folder was read afresh (`replace`), and any of another UIDVALIDITY."""
    account, folder, validity = where
    wrong = "1 = 1" if replace else "uidvalidity != ?"
    db.execute(
        f"DELETE FROM failures WHERE account = ? AND folder = ? AND {wrong}",
        (account, folder) if replace else where,
    )
    db.executemany(
        "DELETE FROM failures WHERE account = ? AND folder = ? AND uid = ?",
        [(account, folder, uid) for uid in gone],
    )
    db.executemany(
        "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)",
        [(account, folder, validity, uid, reason) for uid, reason in found.items()],
    )
