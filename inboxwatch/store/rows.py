"""Cached MessageMeta as JSON rows, and back: the repeated addresses, folders and flags
of a large cache are shared objects once read (a 100,000-message cache in a fraction of
the memory)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from functools import lru_cache
from sys import intern
from typing import Any, Protocol

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
    # Rare fields are left out when empty: most rows stay as they were.
    for key in ("provider_id", "thread_hint", "list_id", "machine"):
        if not data[key]:
            del data[key]
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


def iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
