"""The StateStore's data (core.ports), in SQL that SQLite and PostgreSQL both speak:
store/sqlite.py and store/postgres.py bring the connection, the transactions, the
schema's versions and what their errors mean to a user."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from inboxwatch.core.bodytext import Details
from inboxwatch.core.model import Coverage, MessageMeta, PollRecord
from inboxwatch.core.ports import FolderState, KeptChange
from inboxwatch.core.snooze import Snooze
from inboxwatch.errors import InboxwatchError
from inboxwatch.store import bodies, failures, keptrows, names, notes, reminders
from inboxwatch.store.bodies import Folder
from inboxwatch.store.rows import Db, iso, meta_from_row, meta_to_row, micros

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
        upsert: Collection[MessageMeta],
        delete: Iterable[int],
        replace: bool,
        every: Collection[MessageMeta] | None = None,
        removed: Collection[MessageMeta] = (),
    ) -> None:
        """Within a transaction: the folder's new state and its cache changes, and with
        `every` (its messages now: `run --once`) what they name, `removed` (the messages
        deleted) no longer naming anything (store/names.py). A kept
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
        named = names.save(db, (account, folder), (upsert, removed), every, replace)
        db.executemany(
            "DELETE FROM messages WHERE account = ? AND folder = ? AND uid = ?",
            [(account, folder, uid) for uid in delete],
        )
        db.executemany(  # a generator: 100,000 rows' JSON is never all held at once
            "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?)",
            ((account, folder, m.uid, meta_to_row(m), micros(m.received)) for m in upsert),
        )
        row = (account, folder, state.uidvalidity, state.uidnext, state.modseq, state.exists)
        db.execute(
            "INSERT OR REPLACE INTO folders VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*row, int(named)),
        )

    @guarded
    def name_folder(self, account: str, folder: str, every: Collection[MessageMeta]) -> None:
        with self.transaction() as db:
            named = names.save(db, (account, folder), ((), ()), every, True)
            where = (int(named), account, folder)
            db.execute("UPDATE folders SET named = ? WHERE account = ? AND folder = ?", where)

    # --- what a change can touch (core.splice) ----------------------------------------

    @guarded
    def uids(self, account: str, folder: str, latest: int | None = None) -> set[int]:
        sql = "SELECT uid FROM messages WHERE account = ? AND folder = ?"
        if latest is not None:
            sql += f" ORDER BY uid DESC LIMIT {int(latest)}"
        return {int(uid) for (uid,) in self.db.execute(sql, (account, folder))}

    @guarded
    def named(self, account: str, folder: str) -> bool:
        """Whether the folder's names are kept (store/names.py)."""
        row = self.db.execute(
            "SELECT named FROM folders WHERE account = ? AND folder = ?", (account, folder)
        ).fetchone()
        return bool(row and row[0])

    @guarded
    def naming(self, account: str, wanted: Collection[str]) -> set[tuple[str, int]]:
        return names.naming(self.db, account, wanted)

    @guarded
    def arrived(
        self, account: str, folder: str, after: datetime | None, until: datetime
    ) -> set[int]:
        """The cached messages received after `after` (None: any time), up to `until`."""
        low = -(2**62) if after is None else micros(after)
        rows = self.db.execute(
            "SELECT uid FROM messages WHERE account = ? AND folder = ?"
            " AND received > ? AND received <= ?",
            (account, folder, low, micros(until)),
        )
        return {int(uid) for (uid,) in rows}

    @guarded
    def cached(self, account: str, keys: Collection[tuple[str, int]]) -> list[MessageMeta]:
        """The cached messages at `keys` (folder, uid) that there are."""
        return names.cached(self.db, account, keys)

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
    def save_report(
        self,
        fingerprint: str,
        folders: str,
        head: bytes,
        changes: Sequence[KeptChange],
        whole: bool,
    ) -> bool:
        with self.transaction() as db:
            kept = keptrows.save(db, changes, whole)
            if kept:
                row = (fingerprint, folders, head)
                db.execute("INSERT OR REPLACE INTO reports VALUES (1, ?, ?, ?)", row)
            else:  # the next run reads the cache whole, and keeps rows that match
                db.execute("DELETE FROM reports")
        return kept

    @guarded
    def kept_counts(self, account: str, floor: datetime, now: datetime) -> tuple[int, int]:
        return keptrows.counts(self.db, account, micros(floor), micros(now))

    @guarded
    def kept_findings(self, near: tuple[str, str, str] | None = None) -> list[tuple[int, bytes]]:
        return keptrows.findings(self.db, near)

    @guarded
    def kept_conversations(self) -> list[tuple[str, str, int]]:
        return keptrows.conversations(self.db)

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
