"""The state in PostgreSQL (`[state] url`, issue 23): the same tables and SQL as SQLite
(store/sqlstate.py), through psycopg 3 (the optional extra `inboxwatch[postgres]`).

The shared SQL is SQLite's dialect; five things differ and are translated here, once
per statement: `?` placeholders are psycopg's `%s`; `INSERT OR REPLACE` / `OR IGNORE`
are `ON CONFLICT … DO UPDATE` / `DO NOTHING` on the table's primary key; INTEGER
columns are BIGINT (IMAP UIDs and UIDVALIDITY are unsigned 32-bit, MODSEQ 63-bit); BLOB
ones (the kept report) BYTEA; and a table WITHOUT ROWID (store/names.py) a plain one.
Several services on one database are replicas: they share the accounts by lease
(store/leases.py) rather than keep each other out, as SQLite's file lock does.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from inboxwatch.errors import ConfigError, CorruptState, InboxwatchError, StateError
from inboxwatch.store.rows import Cursor
from inboxwatch.store.schema import MIGRATIONS, SCHEMA_VERSION
from inboxwatch.store.sqlstate import SqlState, guarded

log = logging.getLogger(__name__)
_CREATE = re.compile(r"CREATE TABLE (\w+) \((.*)\)( WITHOUT ROWID)?$", re.DOTALL)
_ADD = re.compile(r"ALTER TABLE (\w+) ADD COLUMN (\w+)")
_UPSERT = re.compile(r"INSERT OR (REPLACE|IGNORE) INTO (\w+)")


def _tables() -> dict[str, tuple[list[str], list[str]]]:
    """Each table's columns and primary key, read from the schema's own statements."""
    tables: dict[str, tuple[list[str], list[str]]] = {}
    for version in sorted(MIGRATIONS):
        for statement in MIGRATIONS[version]:
            if found := _CREATE.match(statement):
                columns, key = [], []
                for part in re.split(r",\s*(?![^()]*\))", found.group(2)):
                    words = part.split()
                    if part.strip().startswith("PRIMARY KEY"):
                        key = [c.strip() for c in part[part.index("(") + 1 : -1].split(",")]
                        continue
                    columns.append(words[0])
                    if "PRIMARY KEY" in part:
                        key = [words[0]]
                tables[found.group(1)] = (columns, key)
            elif found := _ADD.match(statement):
                tables[found.group(1)][0].append(found.group(2))
    return tables


@lru_cache(maxsize=256)
def translate(sql: str) -> str:
    """SQLite's statement as PostgreSQL's."""
    out = sql.replace("?", "%s")
    out = re.sub(r"\bINTEGER\b", "BIGINT", out)
    out = re.sub(r"\bBLOB\b", "BYTEA", out)
    out = out.removesuffix(" WITHOUT ROWID")  # SQLite's; PostgreSQL's tables are heaps
    found = _UPSERT.search(out)
    if found is None:
        return out
    kind, table = found.groups()
    out = _UPSERT.sub(f"INSERT INTO {table}", out)
    if kind == "IGNORE":
        return out + " ON CONFLICT DO NOTHING"
    columns, key = _tables()[table]
    rest = [c for c in columns if c not in key]
    update = ", ".join(f"{c} = EXCLUDED.{c}" for c in rest)
    target = ", ".join(key)
    return out + (
        f" ON CONFLICT ({target}) DO UPDATE SET {update}" if rest else " ON CONFLICT DO NOTHING"
    )


def masked(url: str) -> str:
    """The URL with its password hidden, for errors and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PgDb:
    """A psycopg connection as the shared SQL uses a sqlite3 one (store/rows.Db)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @property
    def in_transaction(self) -> bool:
        from psycopg import pq

        return bool(self.conn.info.transaction_status != pq.TransactionStatus.IDLE)

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        cursor: Cursor = self.conn.execute(translate(sql), tuple(parameters))
        return cursor

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any:
        # An iterator, as for SQLite: 100,000 cached rows are never all held at once.
        with self.conn.cursor() as cursor:
            cursor.executemany(translate(sql), (tuple(p) for p in parameters))


def connect(url: str) -> Any:
    """A psycopg connection (autocommit: transactions are explicit), or the one line."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "state.url is PostgreSQL: pip install 'inboxwatch[postgres]' (psycopg)"
        ) from None
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=15)
    except psycopg.Error as exc:
        raise state_error(url, exc) from None


def state_error(url: str, exc: Exception) -> StateError:
    """A database error as the one line: which database (its password hidden), and what
    the server said."""
    return StateError(f"state.url {masked(url)}: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PostgresStore(SqlState):
    """The StateStore (core.ports) in a PostgreSQL database: tables created and migrated
    on first use; replicas and the commands beside them share it."""

    db: PgDb

    def __init__(self, url: str) -> None:
        self.mutex = threading.RLock()
        self.url = url
        self.conn = connect(url)
        self.db = PgDb(self.conn)
        try:
            self._migrate()
        except BaseException:
            self.conn.close()
            raise

    @guarded
    def _migrate(self) -> None:
        self.conn.execute("CREATE TABLE IF NOT EXISTS inboxwatch_schema (version BIGINT)")
        row = self.conn.execute("SELECT max(version) FROM inboxwatch_schema").fetchone()
        version = int(row[0] or 0)
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"{masked(self.url)} was written by a newer inboxwatch (schema {version}); "
                "upgrade inboxwatch"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction() as db:
                # Two services starting at once: the second waits here, then finds it done.
                self.conn.execute("LOCK TABLE inboxwatch_schema IN EXCLUSIVE MODE")
                done = self.conn.execute("SELECT max(version) FROM inboxwatch_schema")
                if int(done.fetchone()[0] or 0) >= target:
                    continue
                for statement in MIGRATIONS[target]:
                    db.execute(statement)
                self.conn.execute("INSERT INTO inboxwatch_schema VALUES (%s)", (target,))

    @contextmanager
    def transaction(self) -> Iterator[PgDb]:
        """All or nothing, as SQLite's: an interrupted poll leaves the state as it was."""
        import psycopg

        try:
            with self.mutex, self.conn.transaction():
                yield self.db
        except psycopg.Error as exc:  # COMMIT itself: the server went away, a constraint
            raise state_error(self.url, exc) from None

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read within sees the database as it was at the first (REPEATABLE READ),
        and nothing can be written (READ ONLY): `explain` beside the service reads a
        folder's state and its messages of one poll, as from a file (store/cacheview.py)."""
        from psycopg import IsolationLevel

        self.conn.isolation_level = IsolationLevel.REPEATABLE_READ
        self.conn.read_only = True
        # Not under the store's mutex: a scan reads its accounts from threads of its own
        # (core.fanout), and each read takes the mutex for its own statement.
        with self.conn.transaction(force_rollback=True):
            yield

    def follow_path(self) -> None:
        """Each poll: a connection the server dropped (a restart, a failover) is opened
        again; the poll that found it broken failed whole."""
        if not (self.conn.closed or self.conn.broken):
            return
        self.conn = connect(self.url)
        self.db = PgDb(self.conn)
        log.warning("%s: connected again", self.where())

    def fault(self, exc: Exception) -> InboxwatchError | None:
        import psycopg

        if isinstance(exc, psycopg.Error):
            return state_error(self.url, exc)
        if isinstance(exc, ValueError | KeyError | TypeError):  # json, isoformat, a field
            return CorruptState(f"state.url {masked(self.url)}: a row does not decode ({exc})")
        return None

    def recover(self, reason: str) -> None:
        with self.transaction() as db:
            for table in (
                "messages",
                "folders",
                "names",
                "reports",
                "kept_findings",
                "kept_conversations",
                "bodies",
                "failures",
            ):
                db.execute(f"DELETE FROM {table}")
        self.recovered = f"{reason}; emptied the message cache (the digest ledger is kept)"
        log.error("%s; rebuilding the cache from the mailbox", self.recovered)

    def where(self) -> str:
        return f"state database {masked(self.url)}"

    def close(self) -> None:
        self.conn.close()
