"""The service's state: SQLite (WAL) behind an exclusive lock, file mode 0600.

Per account and folder: UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and the cached
MessageMeta of every message inside the lookback, so a poll fetches only what
changed. The digest ledger (pending -> sending -> sent) makes one digest per
period survive restarts and crashes; poll results feed `inboxwatch health`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from inboxwatch.errors import ConfigError, CorruptState, InboxwatchError, LockError
from inboxwatch.store import recovery
from inboxwatch.store.faults import space_error, state_error
from inboxwatch.store.schema import MIGRATIONS, SCHEMA_VERSION
from inboxwatch.store.sqlstate import SqlState, guarded

log = logging.getLogger(__name__)
# A transaction changing more rows than this leaves its checkpoint to the _Checkpointer;
# SQLite's own starts past 1,000 pages of log (~8,000 cached messages).
BIG_COMMIT = 2000


class _Checkpointer:
    """Copies the write-ahead log back into the database file on a thread and connection
    of its own. SQLite runs that copy inside whichever COMMIT takes the log past 1,000
    pages: the first poll of a 100,000-message mailbox writes ~50 MB and then waited
    0.3-0.6 s for it (bench/README.md). PASSIVE blocks neither readers nor the writer
    (https://sqlite.org/wal.html, "Application-Initiated Checkpoints"), and the copy runs
    in C with the GIL released, on the core the poll leaves idle."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="state-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None)
        except sqlite3.Error as exc:  # the main connection checkpoints at close instead
            log.debug("state checkpoint thread: %s", exc)
            return
        try:
            while self._wake.wait() and not self._stopping:
                self._wake.clear()
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # a full disk: the next one, or close(), retries
                    log.debug("state checkpoint: %s", exc)
        finally:
            db.close()

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()


class SqliteStore(SqlState):
    """The embedded StateStore (core.ports): one SQLite file, one instance per file (a
    second one gets LockError, exit 7)."""

    db: sqlite3.Connection

    def __init__(self, path: Path) -> None:
        self.mutex = threading.RLock()
        self.path = path.expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"state.path: cannot create {self.path.parent}: {exc.strerror}"
            ) from None
        self.recovered: str | None = None  # what recover() said, for `inboxwatch repair`
        self._checkpointer: _Checkpointer | None = None  # started by the first big commit
        self._open()

    def _open(self) -> None:
        old_umask = os.umask(0o077)  # the database and its -wal/-shm files: 0600
        try:
            self._lock = self._take_lock()
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise state_error(self.path, exc) from None
        finally:
            os.umask(old_umask)
        stat = os.fstat(self._lock.fileno())
        self._identity = (stat.st_dev, stat.st_ino)
        try:
            self._check()
        except CorruptState as exc:
            self.recover(str(exc))

    @guarded
    def _check(self) -> None:
        """Open the file for use, and prove it sound: random bytes, a truncated file or a
        damaged page fail here (PRAGMA quick_check: ~30 ms per 100,000 cached messages)."""
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        verdict = self.db.execute("PRAGMA quick_check(1)").fetchone()[0]
        if verdict != "ok":
            raise CorruptState(f"state.path {self.path} is damaged ({verdict})")

    def recover(self, reason: str) -> None:
        """Move a damaged file aside and start a new one, carrying the digest ledger over
        when it can be read, else holding digests back (store/recovery.py)."""
        ledger = recovery.salvage_ledger(self.db)
        self._close_quietly()
        aside = recovery.move_aside(self.path)
        self._open()
        with self.transaction() as db:
            if ledger is not None:
                db.executemany("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?)", ledger)
            else:
                db.execute("INSERT OR REPLACE INTO notes VALUES ('ledger_lost', ?)", (str(aside),))
        kept = "kept" if ledger is not None else "lost: digests wait for `repair --accept-resend`"
        self.recovered = f"{reason}; moved it to {aside}, the digest ledger was {kept}"
        log.error("%s; rebuilding the cache from the mailbox", self.recovered)

    def follow_path(self) -> None:
        """Each poll: does state.path still name the open file? Deleted under the running
        service, it is written back from the open database (nothing lost, so a restart
        sends no digest twice); replaced by another file, that file is used."""
        same = recovery.same_file(self.path, self._identity)
        if same:
            return
        if same is None:
            copy = recovery.copy_out(self.db, self.path)
            self._close_quietly()
            os.replace(copy, self.path)
            log.warning("state.path %s was deleted while running; restored it", self.path)
        else:
            self._close_quietly()
            log.warning("state.path %s was replaced while running; using the new file", self.path)
        self._open()

    def _close_quietly(self) -> None:
        self._stop_checkpoints()
        with suppress(sqlite3.Error):  # a damaged file may fail its last checkpoint
            self.db.close()
        self._lock.close()

    def _take_lock(self) -> IO[bytes]:
        """An exclusive flock on the database file itself, held until close(): every path
        that names the file (a symlink, a hard link) meets the same lock, where a lock file
        named after the path let two instances share one database and both send the
        period's digest. flock locks are apart from the POSIX locks SQLite takes; this
        descriptor stays open as long as SQLite's, so closing it drops none of theirs."""
        try:
            lock = open(self.path, "ab")  # noqa: SIM115 - held open; creates the file
        except OSError as exc:
            raise state_error(self.path, exc) from None
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
        with self.mutex:
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise state_error(self.path, exc) from None
            changes = self.db.total_changes
            try:
                yield self.db
                self._commit(self.db.total_changes - changes > BIG_COMMIT)
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):  # COMMIT: a full disk, a lost lock
                    raise state_error(self.path, exc) from None
                raise

    def _commit(self, big: bool) -> None:
        if not big:
            self.db.execute("COMMIT")
            return
        self.db.execute("PRAGMA wal_autocheckpoint=0")  # this COMMIT leaves the log as is
        try:
            self.db.execute("COMMIT")
        finally:
            self.db.execute("PRAGMA wal_autocheckpoint=1000")  # SQLite's default
        if self._checkpointer is None:
            self._checkpointer = _Checkpointer(self.path)
        self._checkpointer.poke()

    def _stop_checkpoints(self) -> None:
        """Before the connection closes (it copies what is left, as the last one)."""
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None

    def _rollback(self) -> None:
        if self.db.in_transaction:  # SQLite itself rolls back on SQLITE_FULL
            with suppress(sqlite3.Error):  # the error that got here is the one to report
                self.db.execute("ROLLBACK")

    def close(self) -> None:
        self._stop_checkpoints()
        self.db.close()
        self._lock.close()

    def fault(self, exc: Exception) -> InboxwatchError | None:
        """SQLite's and the OS's errors (store/faults.py); a row that no longer decodes
        means the file is damaged."""
        if isinstance(exc, sqlite3.Error | OSError):
            return state_error(self.path, exc)
        if isinstance(exc, ValueError | KeyError | TypeError):  # json, isoformat, a field
            return CorruptState(f"state.path {self.path} is damaged (a row: {exc})")
        return None

    def where(self) -> str:
        return f"state file {self.path}"

    def can_write(self) -> None:
        full = space_error(self.path)
        if full is not None:
            raise full
