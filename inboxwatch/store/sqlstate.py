"""The StateStore's data (core.ports), in SQL that SQLite and PostgreSQL both speak:
store/sqlite.py and store/postgres.py bring the connection, the transactions, the
schema's versions and what their errors mean to a user."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from inboxwatch.core.bodytext import Details
from inboxwatch.core.model import Coverage, MessageMeta, PollRecord
from inboxwatch.core.ports import FolderState
from inboxwatch.core.snooze import Snooze
from inboxwatch.errors import InboxwatchError
from inboxwatch.store import bodies, failures, notes, reminders
from inboxwatch.store.bodies import Folder
from inboxwatch.store.rows import Db, iso, meta_from_row, meta_to_row

SCHEMA_VERSION = 13
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
    # 4: why digests are held back (a ledger lost with a damaged file; store/recovery.py).
    4: ("CREATE TABLE notes (name TEXT PRIMARY KEY, value TEXT NOT NULL)",),
    # 5: more header fields are read (List-Id apart, machine-sent marks: issue 18), which
    # cached rows lack: the cache is dropped and read again once. The ledger stays.
    5: ("DELETE FROM messages", "DELETE FROM folders", "DELETE FROM reports"),
    # 6: the user's snoozed and muted threads (store/notes.py).
    6: (notes.TABLE,),
    # 7: what was read of pending messages' bodies (store/bodies.py).
    7: (bodies.TABLE,),
    # 8: which overdue threads each digest listed (store/reminders.py).
    8: (reminders.TABLE,),
    # 9: messages the parsers could not read, not fetched again (store/failures.py).
    9: (failures.TABLE,),
    # 10: replicas on one PostgreSQL (issue 23): each account's last report, so any
    # replica composes a team's digest, and the accounts' leases (store/leases.py). SQLite
    # has one service (its file lock): there `parts` and the leases stay empty.
    10: (
        "CREATE TABLE parts (account TEXT PRIMARY KEY, polled TEXT NOT NULL, report TEXT NOT NULL)",
        "CREATE TABLE leases (account TEXT PRIMARY KEY, holder TEXT NOT NULL,"
        " expires DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE replicas (holder TEXT PRIMARY KEY, seen DOUBLE PRECISION NOT NULL)",
    ),
    # 11: what the cached messages are of (service/backoff.py): when the lookback grew or
    # the account reads another mailbox, a poll reads it in full (else the mail the
    # longer lookback holds is never read, or the other mailbox's cache is taken for it).
    11: (
        "ALTER TABLE polls ADD COLUMN lookback INTEGER",
        "ALTER TABLE polls ADD COLUMN mailbox TEXT",
    ),
    # 12: which parsers read the cache (core.generation.PARSERS): a cache other parsers read is
    # read again once, as is one from before the column (which Python read it is unknown).
    12: ("ALTER TABLE polls ADD COLUMN parsed TEXT",),
    # 13: the kept report as UTF-8 bytes, its folders apart (lastreport.py): a 100,000-message
    # `run --once` held its report's text three times over while writing it (as a str, then
    # a copy with the folders line, then SQLite's UTF-8), and read it all to see the
    # folders. A kept report is only a cache: the next run reads the messages' cache once.
    # Replicas' `parts` stay text: replicas of two versions share them during an upgrade.
    13: (
        "DROP TABLE reports",
        "CREATE TABLE reports (id INTEGER PRIMARY KEY CHECK (id = 1),"
        " fingerprint TEXT NOT NULL, folders TEXT NOT NULL, report BLOB NOT NULL)",
    ),
}

P = ParamSpec("P")
R = TypeVar("R")


class _Faulty(Protocol):
    # One call at a time on the store's one connection: a poll reads its accounts in
    # threads (core.scan.run_scan), and a transaction must not take in another
    # thread's statements. Reentrant: a guarded method opens transactions.
    mutex: threading.RLock

    def fault(self, exc: Exception) -> InboxwatchError | None: ...


S = TypeVar("S", bound=_Faulty)


def guarded(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """The database's errors as the one line a user can act on (the store's `fault`)."""

    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with self.mutex:
                return method(self, *args, **kwargs)
        except Exception as exc:
            found = self.fault(exc)
            if found is None:
                raise
            raise found from None

    return wrapper


class SqlState:
    """Everything a StateStore keeps, on `self.db`; the subclass opens it (and `mutex`)."""

    db: Db
    mutex: threading.RLock

    def transaction(self) -> AbstractContextManager[Db]:
        raise NotImplementedError

    def fault(self, exc: Exception) -> InboxwatchError | None:
        """What `exc` means to the user, or None to let it through."""
        raise NotImplementedError

    recovered: str | None = None  # what a damaged state's recovery said (`repair`)

    def can_write(self) -> None:
        """Raise (errors.StateError) now if a write after the digest went out would fail."""

    def follow_path(self) -> None:
        """Each poll: a file deleted or replaced under the service (store/sqlite.py)."""

    def where(self) -> str:
        """The state's name for the user: `state file …` or `state database …`."""
        raise NotImplementedError

    def recover(self, reason: str) -> None:
        """A row did not decode (CorruptState): start the cache again from the mailbox,
        keeping what cannot be read back from it (the digest ledger, the user's notes)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- folders and cached headers -------------------------------------------------

    @guarded
    def folder(self, account: str, folder: str) -> FolderState | None:
        row = self.db.execute(
            "SELECT uidvalidity, uidnext, modseq, exists_count FROM folders"
            " WHERE account = ? AND folder = ?",
            (account, folder),
        ).fetchone()
        return FolderState(*row) if row else None

    @guarded
    def messages(self, account: str, folder: str) -> dict[int, MessageMeta]:
        rows = self.db.execute(
            "SELECT uid, meta FROM messages WHERE account = ? AND folder = ?", (account, folder)
        )
        return {uid: meta_from_row(folder, meta) for uid, meta in rows}

    @guarded
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
        delete = list(delete)
        if replace:
            db.execute("DELETE FROM messages WHERE account = ? AND folder = ?", (account, folder))
        bodies.forget(db, (account, folder, state.uidvalidity), delete)
        db.executemany(
            "DELETE FROM messages WHERE account = ? AND folder = ? AND uid = ?",
            [(account, folder, uid) for uid in delete],
        )
        db.executemany(  # a generator: 100,000 rows' JSON is never all held at once
            "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?)",
            ((account, folder, m.uid, meta_to_row(m)) for m in upsert),
        )
        db.execute(
            "INSERT OR REPLACE INTO folders VALUES (?, ?, ?, ?, ?, ?)",
            (account, folder, state.uidvalidity, state.uidnext, state.modseq, state.exists),
        )

    @guarded
    def parse_failures(self, where: Folder) -> dict[int, str]:
        return failures.rows(self.db, where)

    def save_failures(
        self, where: Folder, found: Mapping[int, str], gone: Iterable[int], replace: bool
    ) -> None:  # within save_folder's transaction
        failures.save(self.db, where, found, gone, replace)

    # --- the last report (lastreport.py) -------------------------------------------

    @guarded
    def kept_folders(self, fingerprint: str) -> str | None:
        row = self.db.execute("SELECT fingerprint, folders FROM reports WHERE id = 1").fetchone()
        return str(row[1]) if row and row[0] == fingerprint else None

    @guarded
    def kept_report(self, fingerprint: str, folders: str) -> bytes | None:
        row = self.db.execute(
            "SELECT report FROM reports WHERE id = 1 AND fingerprint = ? AND folders = ?",
            (fingerprint, folders),
        ).fetchone()
        return bytes(row[0]) if row else None

    @guarded
    def save_report(self, fingerprint: str, folders: str, report: bytes) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO reports VALUES (1, ?, ?, ?)", (fingerprint, folders, report)
            )

    # --- the digest ledger ----------------------------------------------------------

    @guarded
    def digest(self, period: str) -> tuple[str, str] | None:
        row = self.db.execute(
            "SELECT state, message_id FROM digests WHERE period = ?", (period,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    @guarded
    def mark_digest(self, period: str, state: str, message_id: str, now: datetime) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?)",
                (period, state, message_id, now.isoformat()),
            )

    @guarded
    def claim_digest(
        self, period: str, message_id: str, now: datetime, stale_before: datetime | None = None
    ) -> bool:
        """Pending (or unknown) -> sending, in one statement: of two replicas claiming a
        period at once one wins. A claim left "sending" (its sender died before it could
        say "sent") is taken over once older than `stale_before`; None: any (one service
        per SQLite file, so such a claim is this service's own, from before a crash)."""
        self.can_write()
        cutoff = "9999" if stale_before is None else stale_before.isoformat()
        with self.transaction() as db:
            row = db.execute(
                "INSERT INTO digests VALUES (?, 'sending', ?, ?) ON CONFLICT (period) DO UPDATE"
                " SET state = 'sending', message_id = excluded.message_id,"
                " updated_at = excluded.updated_at"
                " WHERE digests.state NOT IN ('sent', 'empty')"
                " AND (digests.state <> 'sending' OR digests.updated_at < ?) RETURNING period",
                (period, message_id, now.isoformat(), cutoff),
            ).fetchone()
        return row is not None

    # --- each account's last report, for replicas (service/replicas.py) -------------

    @guarded
    def save_parts(self, polled: datetime, parts: Mapping[str, str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO parts VALUES (?, ?, ?)",
                ((name, polled.isoformat(), text) for name, text in parts.items()),
            )

    @guarded
    def touch_parts(self, polled: datetime, names: Sequence[str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE parts SET polled = ? WHERE account = ?",
                ((polled.isoformat(), name) for name in names),
            )

    @guarded
    def parts(self) -> dict[str, tuple[datetime, str]]:
        rows = self.db.execute("SELECT account, polled, report FROM parts").fetchall()
        return {row[0]: (datetime.fromisoformat(row[1]), row[2]) for row in rows}

    @guarded
    def digests_seen(self) -> reminders.Seen:
        return reminders.counts(self.db)

    @guarded
    def note_listed(self, period: str, threads: Sequence[tuple[str, str]], now: datetime) -> None:
        with self.transaction() as db:
            reminders.insert(db, period, threads, now)

    @guarded
    def ledger_lost(self) -> str | None:
        row = self.db.execute("SELECT value FROM notes WHERE name = 'ledger_lost'").fetchone()
        return str(row[0]) if row else None

    def accept_resend(self) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM notes WHERE name = 'ledger_lost'")

    # --- polls, for health and backoff ---------------------------------------------

    @guarded
    def details(self, where: Folder, uids: Sequence[int]) -> dict[int, Details]:
        return bodies.rows(self.db, where, uids)

    @guarded
    def save_details(self, where: Folder, found: Mapping[int, Details]) -> None:
        with self.transaction() as db:
            bodies.insert(db, where, found)

    @guarded
    def forget_details(self, account: str) -> None:
        with self.transaction() as db:
            bodies.forget_account(db, account)

    @guarded
    def snoozes(self) -> list[Snooze]:
        return notes.rows(self.db)

    @guarded
    def polls(self) -> dict[str, PollRecord]:
        return poll_records(self.db)

    @guarded
    def record_poll(
        self,
        account: str,
        now: datetime,
        error: str | None = None,
        code: int | None = None,
        not_before: datetime | None = None,
        covers: Coverage | None = None,
    ) -> None:
        stamp = now.isoformat()
        until = not_before.isoformat() if not_before else None
        noted: tuple[int | None, str | None, str | None] = (None, None, None)
        if covers is not None:
            noted = (int(covers.lookback.total_seconds()), covers.mailbox, covers.parsed)
        with self.transaction() as db:
            if error is None:  # a success that does not say what it read keeps the last
                db.execute(
                    "INSERT INTO polls VALUES (?, ?, ?, NULL, NULL, 0, NULL, ?, ?, ?)"
                    " ON CONFLICT(account) DO UPDATE SET last_attempt = excluded.last_attempt,"
                    " last_success = excluded.last_success, last_error = NULL, error_code = NULL,"
                    " failures = 0, not_before = NULL,"
                    " lookback = COALESCE(excluded.lookback, polls.lookback),"
                    " mailbox = COALESCE(excluded.mailbox, polls.mailbox),"
                    " parsed = COALESCE(excluded.parsed, polls.parsed)",
                    (account, stamp, stamp, *noted),
                )
            else:
                db.execute(
                    "INSERT INTO polls VALUES (?, ?, NULL, ?, ?, 1, ?, NULL, NULL, NULL)"
                    " ON CONFLICT(account) DO UPDATE SET last_attempt = excluded.last_attempt,"
                    " last_error = excluded.last_error, error_code = excluded.error_code,"
                    " failures = polls.failures + 1, not_before = excluded.not_before",
                    (account, stamp, error, code, until),
                )


def poll_records(db: Db) -> dict[str, PollRecord]:
    # Every column, in the migrations' order: `health` reads the file beside a service an
    # upgrade has not restarted yet, whose polls lack the later columns (11, 12).
    rows = db.execute("SELECT * FROM polls").fetchall()
    return {r[0]: _record(r) for r in rows}


def _record(row: Sequence[Any]) -> PollRecord:
    account, attempt, success, error, code, failures, not_before, *rest = row
    lookback, mailbox, parsed = (*rest, None, None, None)[:3]
    covers = None
    if lookback is not None and mailbox is not None and parsed is not None:
        covers = Coverage(mailbox, timedelta(seconds=lookback), parsed)
    return PollRecord(
        account, iso(attempt), iso(success), error, code, failures, iso(not_before), covers
    )
