"""A damaged or vanished state file, handled without losing the digest ledger.

The cache is rebuildable from the mailbox; only the digest ledger is precious (it
keeps one digest per period). A damaged file is moved aside, never deleted, and its
ledger rows are carried into the new file when they can still be read; when they
cannot, digests are held back until the user accepts a possible resend (`inboxwatch
repair --accept-resend`), so no duplicate goes out silently.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

LedgerRows = list[tuple[str, str, str, str]]
_STATES = {"pending", "sending", "sent", "empty"}
SIDE_FILES = ("", "-wal", "-shm")


def salvage_ledger(db: sqlite3.Connection) -> LedgerRows | None:
    """The digest ledger's rows, or None where the damage reached them."""
    try:
        rows = db.execute("SELECT period, state, message_id, updated_at FROM digests").fetchall()
    except sqlite3.Error:
        return None
    good = [r for r in rows if all(isinstance(v, str) for v in r) and r[1] in _STATES]
    return good if len(good) == len(rows) else None


def move_aside(path: Path, now: datetime | None = None) -> Path:
    """Rename the file (and its WAL and shared-memory files) to `<name>.corrupt-<time>`."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in SIDE_FILES:
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, f"{aside}{suffix}")
    return aside


def same_file(path: Path, identity: tuple[int, int]) -> bool | None:
    """Whether `path` still names the file opened as (st_dev, st_ino); None if gone."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino) == identity


def copy_out(db: sqlite3.Connection, path: Path) -> Path:
    """The open database written to a new file beside `path` (VACUUM INTO), mode 0600:
    the state of a file deleted under the service lives on in the open connection."""
    copy = path.with_name(f"{path.name}.restore")
    copy.unlink(missing_ok=True)
    old_umask = os.umask(0o077)
    try:
        db.execute("VACUUM INTO ?", (str(copy),))
    finally:
        os.umask(old_umask)
    return copy
