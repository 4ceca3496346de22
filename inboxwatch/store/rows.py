"""Cached MessageMeta as JSON rows (arrays; objects from earlier versions), and back:
the repeated addresses, folders and flags of a large cache are shared objects once read
(a 100,000-message cache in a fraction of the memory)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from sys import intern
from typing import Any, Protocol

import orjson

from inboxwatch.core.model import Address, MessageMeta
from inboxwatch.core.parse import media_type


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """A connection as the state's SQL uses it: sqlite3's, or store/postgres.py's."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


RARE = 4  # provider_id, thread_hint, list_id, machine: left off the row's end when empty


def _encode(row: list[Any]) -> str:
    # orjson, not json: 100,000 rows are made in 0.28 s instead of 0.67 (given the
    # datetimes as they are) and read back in 0.52 s instead of 0.74 (bench/README.md);
    # the same JSON either way.
    return orjson.dumps(row).decode()


@lru_cache(maxsize=1 << 10)
def _sorted_flags(flags: frozenset[str]) -> list[str]:
    return sorted(flags)  # flag sets are shared objects (parse.py): sorted once each


def _pairs(addresses: tuple[Address, ...]) -> list[tuple[str, str]]:
    return [(a.name, a.address) for a in addresses]


def meta_to_row(meta: MessageMeta) -> str:
    """A JSON array of the fields after `folder` (the row's key holds it), in
    MessageMeta's order: no field names, and decoded without a dict per row, a
    100,000-message cache writes in 1.1 s instead of 1.9 and reads in 0.9 s instead of
    1.9 (bench/README.md)."""
    row: list[Any] = [
        *(meta.uid, meta.message_id, meta.in_reply_to, meta.references, meta.subject),
        (meta.sender.name, meta.sender.address) if meta.sender else None,
        # orjson writes a datetime as isoformat() does (RFC 3339; ours are all UTC), in a
        # fraction of the time: 0.1 s of a 100,000-message cache's write.
        *(meta.received, meta.date),
        *(_pairs(meta.reply_to), _pairs(meta.to), _pairs(meta.cc), _sorted_flags(meta.flags)),
        *meta[13:],
    ]
    if not any(row[-RARE:]):
        del row[-RARE:]
    return _encode(row)


def meta_from_row(folder: str, text: str) -> MessageMeta:
    """The message `meta_to_row` wrote, or an earlier version's JSON object (meta_from_json).
    Raises ValueError or TypeError on anything else (the store: a damaged state)."""
    if text[:1] != "[":
        return meta_from_json(text)
    fields = orjson.loads(text)
    uid, message_id, replied, references, subject, sender, received, date, *rest = fields
    reply_to, to, cc, flags, *plain = rest
    from_iso = datetime.fromisoformat
    # Ids interned, as parse.py does: an id recurs in later messages' links.
    return MessageMeta(
        *(intern(folder), uid, intern(message_id) if message_id else None),
        *(tuple(map(intern, replied)), tuple(map(intern, references)), subject),
        _shared_address(*sender) if sender else None,
        *(from_iso(received), from_iso(date) if date else None),
        *(_addresses(reply_to), _addresses(to), _addresses(cc)),
        _shared_flags(tuple(flags)),
        *plain,
    )


def _addresses(pairs: list[list[str]]) -> tuple[Address, ...]:
    return _shared_list(tuple(map(tuple, pairs))) if pairs else ()


def meta_from_json(text: str) -> MessageMeta:
    """A row as versions before meta_to_row wrote it: a JSON object with field names."""
    data: dict[str, Any] = orjson.loads(text)
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(when: datetime) -> int:
    """A time as whole microseconds since 1970 (exact, as a float's would not be): the
    column `messages.received` is compared in SQL (store/names.py)."""
    return (when - _EPOCH) // timedelta(microseconds=1)


def iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
