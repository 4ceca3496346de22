"""The state's schema, version by version, in SQL that SQLite and PostgreSQL both speak
(store/postgres.py translates what differs): each store brings a database up to
SCHEMA_VERSION by running the versions it lacks, in order."""

from __future__ import annotations

from inboxwatch.store import bodies, failures, keptrows, names, notes, reminders

SCHEMA_VERSION = 15
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
    # 14: what each cached message names and when it arrived (store/names.py), so that
    # `run --once` after a change reads only the messages it can touch (core.splice).
    # Rows from before have no `received` and no folder is named: the next `run --once`
    # that reads a folder whole names it.
    14: (
        "ALTER TABLE messages ADD COLUMN received INTEGER",
        "ALTER TABLE folders ADD COLUMN named INTEGER NOT NULL DEFAULT 0",
        names.TABLE,
    ),
    # 15: the kept report's findings and conversations as rows (store/keptrows.py): a
    # `run --once` after a change writes the rows it touched, not the whole report. A
    # report kept before is read whole once (its fingerprint's FORMAT differs).
    # What arrived in a span of time, found by the index (store/sqlstate.py `arrived`): a
    # change run asks twice a folder, and each read the folder's rows (~13 ms at 60,000).
    15: (
        "DELETE FROM reports",
        *keptrows.TABLES,
        "CREATE INDEX messages_received ON messages (account, folder, received)",
    ),
}
