"""What each cached message names (core.splice.names_of), so that `run --once` and a lean
service find the messages a change can touch without reading the rest (issue 21): the SQL.

A row is two integers: a hash of the name, and the message's place (a hash of its account
and folder, and its UID). 100,000 messages name ~390,000 ids and subjects: as text they
doubled the state file (+60 MB) and took 1.8 s to write; with the account and folder as
text beside the hash ~1.0 s, and another ~1.1 s for an index to delete a message's names
by. Two names or two folders sharing a hash only make the set of messages read larger,
never another one: core.splice is right on any superset. For the same reason a message's
names are dropped by its own names, and a row left behind by a message gone without them
costs nothing but a lookup.

`run --once` keeps them as it reads (`folders.named`). A lean service names what its
first read found once that poll's report is out (service.lean): writing every name would
slow its first poll by over a second at 100,000 messages. A replica keeps none (it finds
what a change touches in its memory: core.incremental); a folder it wrote is named afresh
by the next whole read that names.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Iterable, Iterator

from inboxwatch.core.model import MessageMeta
from inboxwatch.core.splice import names_of
from inboxwatch.core.subjects import Bases
from inboxwatch.store.rows import Db, meta_from_row, micros

# WITHOUT ROWID: the key is the table, not a second tree beside it (PostgreSQL's tables
# are heaps: store/postgres.py leaves the words out).
TABLE = (
    "CREATE TABLE names (name INTEGER NOT NULL, place INTEGER NOT NULL,"
    " PRIMARY KEY (name, place)) WITHOUT ROWID"
)
_CHUNK = 500  # names in one IN (...): well under SQLite's 32,766 parameters
_INSERT = "INSERT OR IGNORE INTO names VALUES (?, ?)"
_SIGN = 1 << 63  # SQLite's INTEGER and PostgreSQL's BIGINT are signed


def _hash(text: str) -> int:
    """64 bits: CRC-32 and Adler-32 of the UTF-8, in C (half blake2b's cost a name)."""
    data = text.encode("utf-8", "surrogatepass")
    return (zlib.crc32(data) << 32 | zlib.adler32(data)) - _SIGN


def _folder(account: str, folder: str) -> int:
    return zlib.crc32(f"{account}\0{folder}".encode("utf-8", "surrogatepass")) << 32


def _rows(account: str, messages: Iterable[MessageMeta]) -> Iterator[tuple[int, int]]:
    bases = Bases()  # most subjects recur: each base is taken once
    folders: dict[str, int] = {}
    for msg in messages:
        where = folders.get(msg.folder)
        if where is None:
            where = folders[msg.folder] = _folder(account, msg.folder)
        place = (where | msg.uid) - _SIGN
        for name in names_of(msg, bases):
            yield _hash(name), place


def save(
    db: Db,
    where: tuple[str, str],
    change: tuple[Collection[MessageMeta], Collection[MessageMeta]],
    every: Collection[MessageMeta] | None,
    fresh: bool,
) -> bool:
    """The folder's names after a change (messages added or changed, messages removed),
    before its row in `folders` is written; whether it is named after. With `every` (its
    messages now) only the change is named where the folder was named and not read afresh
    (`fresh`), else every message; with `every` None (a service) none are kept. An empty
    `every` names afresh only a folder with no cached message (`SyncingSource.delta`
    passes none: it changes named folders only, and another would stay unnamed)."""
    account, folder = where
    found = db.execute("SELECT named FROM folders WHERE account = ? AND folder = ?", where)
    row = found.fetchone()
    added, removed = change
    if every is not None and _shared(db, where):
        every = None  # its places are another folder's too: neither can be named
    if every is not None and not fresh and row and row[0]:
        db.executemany("DELETE FROM names WHERE name = ? AND place = ?", _rows(account, removed))
        db.executemany(_INSERT, sorted(_rows(account, added)))
        return True
    low = _folder(account, folder) - _SIGN
    db.execute("DELETE FROM names WHERE place >= ? AND place <= ?", (low, low + 0xFFFFFFFF))
    if every is None or not (every or fresh or _empty(db, where)):
        return False
    db.executemany(_INSERT, sorted(_rows(account, every)))  # in key order: ~25% sooner
    _date(db, where, every)
    return True


def _shared(db: Db, where: tuple[str, str]) -> bool:
    """Whether another folder of the account hashes to this one's places (a 32-bit hash:
    about one account in 10^8 with ten folders). A message's names would then be dropped
    with another's, so neither folder is named: each change run reads whole."""
    account, folder = where
    mine = _folder(account, folder)
    rows = db.execute("SELECT folder FROM folders WHERE account = ?", (account,))
    others = [f for (f,) in rows if f != folder and _folder(account, str(f)) == mine]
    db.executemany(
        "UPDATE folders SET named = 0 WHERE account = ? AND folder = ?",
        [(account, other) for other in others],
    )
    return bool(others)


def _empty(db: Db, where: tuple[str, str]) -> bool:
    found = db.execute("SELECT 1 FROM messages WHERE account = ? AND folder = ? LIMIT 1", where)
    return found.fetchone() is None


def _date(db: Db, where: tuple[str, str], every: Collection[MessageMeta]) -> None:
    """`received` where an earlier version wrote the row without it (schema 14)."""
    rows = db.execute(
        "SELECT uid FROM messages WHERE account = ? AND folder = ? AND received IS NULL", where
    )
    undated = {int(uid) for (uid,) in rows}
    db.executemany(
        "UPDATE messages SET received = ? WHERE account = ? AND folder = ? AND uid = ?",
        [(micros(m.received), *where, m.uid) for m in every if m.uid in undated],
    )


def naming(db: Db, account: str, names: Collection[str]) -> set[tuple[str, int]]:
    """The places (folder, UID) of the account's messages that name any of `names` (or
    share a hash with one)."""
    rows = db.execute("SELECT folder FROM folders WHERE account = ?", (account,))
    of = {_folder(account, str(folder)): str(folder) for (folder,) in rows}
    found: set[tuple[str, int]] = set()
    for chunk, marks in _chunks(sorted({_hash(n) for n in names})):
        places = db.execute(f"SELECT place FROM names WHERE name IN ({marks})", chunk)
        for (signed,) in places:
            place = int(signed) + _SIGN
            folder = of.get(place & ~0xFFFFFFFF)
            if folder is not None:
                found.add((folder, place & 0xFFFFFFFF))
    return found


def cached(db: Db, account: str, keys: Collection[tuple[str, int]]) -> list[MessageMeta]:
    """The cached messages at `keys` (folder, uid) that there are."""
    by_folder: dict[str, list[int]] = {}
    for folder, uid in keys:
        by_folder.setdefault(folder, []).append(uid)
    found: list[MessageMeta] = []
    for folder, uids in by_folder.items():
        for chunk, marks in _chunks(uids):
            rows = db.execute(
                f"SELECT meta FROM messages WHERE account = ? AND folder = ? AND uid IN ({marks})",
                (account, folder, *chunk),
            )
            found.extend(meta_from_row(folder, meta) for (meta,) in rows)
    return found


def _chunks(values: list[int]) -> Iterator[tuple[list[int], str]]:
    """`values` a statement's worth at a time, with the placeholders for its IN (...)."""
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        yield chunk, ", ".join("?" * len(chunk))
