"""The service's state: SQLite (WAL) behind an exclusive lock, file mode 0600.

Per account and folder: UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and the cached
MessageMeta of every message inside the lookback, so a poll fetches only what
changed. The digest ledger (pending -> sending -> sent) makes one digest per
period survive restarts and crashes; poll results feed `inboxwatch health`.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from sys import intern
from typing import IO, Any

from inboxwatch.core.model import Address, MessageMeta, PollRecord
from inboxwatch.core.parse import media_type
from inboxwatch.core.ports import FolderState
from inboxwatch.errors import ConfigError, LockError

SCHEMA_VERSION = 3
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE folders (account TEXT NOT NULL, folder TEXT NOT NULL,"
        " uidvalidity INTEGER NOT NULL, uidnext INTEGER, modseq INTEGER, exists_count INTEGER,"
        " PRIMARY KEY (account, folder))",
        "CREATE TABLE messages (account TEXT NOT NULL, folder TEXT NOT NULL, uid INTEGER NOT NULL,"
        " meta TEXT NOT NULL, PRIMARY KEY (account, folder, uid))",
        "CREATE TABLE digests (period TEXT PRIMARY KEY, state TEXT NOT NULL,"
        " message_id TEXT NOT NULL, updated_at TEXT NOT NULL)",
        "CREATE TABLE polls (account TEXT PRIMARY KEY, last_attempt TEXT, last_success TEXT,"
        " last_error TEXT, error_code INTEGER, failures INTEGER NOT NULL DEFAULT 0)",
    ),
    # 2: a throttling server's "come back later" time (Microsoft 365's Suggested Backoff).
    2: ("ALTER TABLE polls ADD COLUMN not_before TEXT",),
    # 3: the last clean poll's report, for `run --once` (lastreport.py).
    3: (
        "CREATE TABLE reports (id INTEGER PRIMARY KEY CHECK (id = 1),"
        " fingerprint TEXT NOT NULL, report TEXT NOT NULL)",
    ),
}


def _address(a: Address) -> dict[str, str]:
    return {"name": a.name, "address": a.address}


def meta_to_json(meta: MessageMeta) -> str:
    data: dict[str, Any] = meta._asdict()
    data["received"] = meta.received.isoformat()
    data["date"] = meta.date.isoformat() if meta.date else None
    data["sender"] = _address(meta.sender) if meta.sender else None
    for key in ("reply_to", "to", "cc"):
        data[key] = [_address(a) for a in getattr(meta, key)]
    data["flags"] = sorted(meta.flags)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def meta_from_json(text: str) -> MessageMeta:
    data: dict[str, Any] = json.loads(text)
    for key in ("received", "date"):
        data[key] = datetime.fromisoformat(data[key]) if data[key] else None
    # Ids and media types interned, as parse.py does: an id recurs in later messages' links.
    data["folder"] = intern(data["folder"])  # one string per folder, not one per row
    data["message_id"] = intern(data["message_id"]) if data["message_id"] else None
    for key in ("in_reply_to", "references"):
        data[key] = tuple(map(intern, data[key]))
    # Rows written before the media type alone was kept still hold its parameters.
    data["content_type"] = media_type(data["content_type"])
    for key in ("reply_to", "to", "cc"):
        data[key] = _shared_list(tuple((a["name"], a["address"]) for a in data[key]))
    sender = data["sender"]
    data["sender"] = _shared_address(sender["name"], sender["address"]) if sender else None
    data["flags"] = _shared_flags(tuple(data["flags"]))
    return MessageMeta(**data)


# Read back, equal values become one object each, as when parsed (parse.py's caches).
@lru_cache(maxsize=1 << 15)
def _shared_address(name: str, address: str) -> Address:
    return Address(name, address)


@lru_cache(maxsize=1 << 15)
def _shared_list(pairs: tuple[tuple[str, str], ...]) -> tuple[Address, ...]:
    """An address list as one tuple per distinct value (the owner in every To), as the
    parser's cache keyed by the raw header gives them: ~64 bytes a message less."""
    return tuple(_shared_address(name, address) for name, address in pairs)


@lru_cache(maxsize=1 << 10)
def _shared_flags(flags: tuple[str, ...]) -> frozenset[str]:
    return frozenset(flags)


def _iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class SqliteStore:
    """The embedded StateStore (core.ports): one SQLite file, one instance per file (a
    second one gets LockError, exit 7)."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"state.path: cannot create {self.path.parent}: {exc.strerror}"
            ) from None
        old_umask = os.umask(0o077)  # the database and its -wal/-shm files: 0600
        try:
            self._lock = self._take_lock()
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _take_lock(self) -> IO[bytes]:
        """An exclusive flock on the database file itself, held until close(): every path
        that names the file (a symlink, a hard link) meets the same lock, where a lock file
        named after the path let two instances share one database and both send the
        period's digest. flock locks are apart from the POSIX locks SQLite takes; this
        descriptor stays open as long as SQLite's, so closing it drops none of theirs."""
        try:
            lock = open(self.path, "ab")  # noqa: SIM115 - held open; creates the file
        except OSError as exc:
            raise ConfigError(f"state.path: cannot open {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise LockError(
                f"another inboxwatch is using {self.path}; stop it, or give this "
                "one its own state.path"
            ) from None
        return lock

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"{self.path} was written by a newer inboxwatch "
                f"(schema {version}); upgrade inboxwatch"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                for statement in MIGRATIONS[target]:
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {target}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing: an interrupted poll leaves the previous state intact."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()
        self._lock.close()

    # --- folders and cached headers -------------------------------------------------

    def folder(self, account: str, folder: str) -> FolderState | None:
        row = self.db.execute(
            "SELECT uidvalidity, uidnext, modseq, exists_count FROM folders"
            " WHERE account = ? AND folder = ?",
            (account, folder),
        ).fetchone()
        return FolderState(*row) if row else None

    def messages(self, account: str, folder: str) -> dict[int, MessageMeta]:
        rows = self.db.execute(
            "SELECT uid, meta FROM messages WHERE account = ? AND folder = ?", (account, folder)
        )
        return {uid: meta_from_json(meta) for uid, meta in rows}

    def save_folder(
        self,
        account: str,
        folder: str,
        state: FolderState,
        upsert: Iterable[MessageMeta],
        delete: Iterable[int],
        replace: bool,
    ) -> None:
        """Within a transaction: the folder's new state and its cache changes. A kept
        report describes the states before: it goes in the same transaction, so no later
        poll carries it forward over mail read since (lastreport.py)."""
        if not self.db.in_transaction:
            raise RuntimeError("save_folder outside transaction(): it would not be atomic")
        db = self.db
        db.execute("DELETE FROM reports")
        if replace:
            db.execute("DELETE FROM messages WHERE account = ? AND folder = ?", (account, folder))
        db.executemany(
            "DELETE FROM messages WHERE account = ? AND folder = ? AND uid = ?",
            [(account, folder, uid) for uid in delete],
        )
        db.executemany(  # a generator: 100,000 rows' JSON is never all held at once
            "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?)",
            ((account, folder, m.uid, meta_to_json(m)) for m in upsert),
        )
        db.execute(
            "INSERT OR REPLACE INTO folders VALUES (?, ?, ?, ?, ?, ?)",
            (account, folder, state.uidvalidity, state.uidnext, state.modseq, state.exists),
        )

    # --- the last report (lastreport.py) -------------------------------------------

    def last_report(self, fingerprint: str) -> str | None:
        row = self.db.execute("SELECT fingerprint, report FROM reports WHERE id = 1").fetchone()
        return row[1] if row and row[0] == fingerprint else None

    def save_report(self, fingerprint: str, text: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO reports VALUES (1, ?, ?)", (fingerprint, text))

    # --- the digest ledger ----------------------------------------------------------

    def digest(self, period: str) -> tuple[str, str] | None:
        row = self.db.execute(
            "SELECT state, message_id FROM digests WHERE period = ?", (period,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def mark_digest(self, period: str, state: str, message_id: str, now: datetime) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?)",
                (period, state, message_id, now.isoformat()),
            )

    # --- polls, for health and backoff ---------------------------------------------

    def polls(self) -> dict[str, PollRecord]:
        return _poll_records(self.db)

    def record_poll(
        self,
        account: str,
        now: datetime,
        error: str | None = None,
        code: int | None = None,
        not_before: datetime | None = None,
    ) -> None:
        stamp = now.isoformat()
        until = not_before.isoformat() if not_before else None
        with self.transaction() as db:
            if error is None:
                db.execute(
                    "INSERT INTO polls VALUES (?, ?, ?, NULL, NULL, 0, NULL) ON CONFLICT(account)"
                    " DO UPDATE SET last_attempt = excluded.last_attempt, last_success ="
                    " excluded.last_success, last_error = NULL, error_code = NULL, failures = 0,"
                    " not_before = NULL",
                    (account, stamp, stamp),
                )
            else:
                db.execute(
                    "INSERT INTO polls VALUES (?, ?, NULL, ?, ?, 1, ?) ON CONFLICT(account)"
                    " DO UPDATE SET last_attempt = excluded.last_attempt, last_error ="
                    " excluded.last_error, error_code = excluded.error_code,"
                    " failures = failures + 1, not_before = excluded.not_before",
                    (account, stamp, error, code, until),
                )


def _poll_records(db: sqlite3.Connection) -> dict[str, PollRecord]:
    rows = db.execute(
        "SELECT account, last_attempt, last_success, last_error, error_code, failures,"
        " not_before FROM polls"
    ).fetchall()
    return {
        r[0]: PollRecord(r[0], _iso(r[1]), _iso(r[2]), r[3], r[4], r[5], _iso(r[6])) for r in rows
    }


def read_polls(path: Path) -> dict[str, PollRecord]:
    """Poll records without taking the lock (health runs beside the service), read-only."""
    path = path.expanduser()
    if not path.exists():
        return {}
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return _poll_records(db)
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()
