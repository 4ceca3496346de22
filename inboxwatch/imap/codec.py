"""The one codec for parsed records on the worker's pipe (imap.worker <-> imap.workermain).

`marshal` takes plain values only (no NamedTuple, datetime or Address), so a MessageMeta
goes as a tuple in its own field order, with the fields marshal cannot take converted
by name: the sender and address lists as indexes into tables sent once (the parser
shares equal addresses, so does the wire), the two times as ISO 8601 text. Every other
field goes as it is. Adding a field to MessageMeta needs nothing here unless marshal
cannot carry its type; the round-trip test sets every field and fails if so.
"""

from __future__ import annotations

import marshal
from collections.abc import Sequence
from datetime import datetime

from inboxwatch.core.model import Address, MessageMeta, ParseFailure

_FIELD = {name: index for index, name in enumerate(MessageMeta._fields)}
SENDER = _FIELD["sender"]
RECEIVED = _FIELD["received"]
DATE = _FIELD["date"]
REPLY_TO = _FIELD["reply_to"]
TO = _FIELD["to"]
CC = _FIELD["cc"]
ADDRESS_LISTS = (REPLY_TO, TO, CC)
FLAGS = _FIELD["flags"]


def iso_time(value: datetime | None) -> str | None:
    """ISO 8601, offset included: exact both ways, and the C parser rebuilds a datetime
    in ~0.1 us (epoch arithmetic with timedeltas costs ~0.35 us)."""
    return None if value is None else value.isoformat()


class _Table:
    """Addresses and address lists sent once each: the parser shares them, so do we."""

    def __init__(self) -> None:
        self.addresses: list[tuple[str, str]] = []
        self.lists: list[tuple[int, ...]] = []
        self._address: dict[int, int] = {}
        self._list: dict[int, int] = {}

    def address(self, address: Address | None) -> int:
        if address is None:
            return -1
        index = self._address.get(id(address))
        if index is None:
            index = self._address[id(address)] = len(self.addresses)
            self.addresses.append((address.name, address.address))
        return index

    def list(self, addresses: tuple[Address, ...]) -> int:
        index = self._list.get(id(addresses))
        if index is None:
            index = self._list[id(addresses)] = len(self.lists)
            self.lists.append(tuple(self.address(a) for a in addresses))
        return index


def _row(meta: MessageMeta, table: _Table) -> tuple[object, ...]:
    row: list[object] = list(meta)
    row[SENDER] = table.address(meta.sender)
    row[RECEIVED] = meta.received.isoformat()
    row[DATE] = iso_time(meta.date)
    row[REPLY_TO] = table.list(meta.reply_to)
    row[TO] = table.list(meta.to)
    row[CC] = table.list(meta.cc)
    return tuple(row)


def encode_scan(messages: Sequence[MessageMeta], failures: Sequence[ParseFailure]) -> bytes:
    """Parsed records as plain tuples for `marshal`. Holds the objects it indexes by id()
    until it returns, so no id is reused."""
    table = _Table()
    rows = [_row(m, table) for m in messages]
    broken = [(f.folder, f.uid, f.reason) for f in failures]
    return marshal.dumps((table.addresses, table.lists, rows, broken))


def decode_scan(
    data: bytes, known: dict[tuple[str, str], Address] | None = None
) -> tuple[list[MessageMeta], list[ParseFailure]]:
    """The records of `encode_scan`; `known` shares equal addresses across several."""
    names, lists, rows, broken = marshal.loads(data)
    known = {} if known is None else known
    addresses = [known.get(pair) or known.setdefault(pair, Address(*pair)) for pair in names]
    groups = [tuple(addresses[i] for i in group) for group in lists]
    flag_sets: dict[frozenset[str], frozenset[str]] = {}
    iso = datetime.fromisoformat
    make = MessageMeta._make
    messages = []
    for values in rows:
        row = list(values)
        sender = row[SENDER]
        row[SENDER] = None if sender < 0 else addresses[sender]
        row[RECEIVED] = iso(row[RECEIVED])
        date = row[DATE]
        row[DATE] = None if date is None else iso(date)
        for index in ADDRESS_LISTS:
            row[index] = groups[row[index]]
        row[FLAGS] = flag_sets.setdefault(row[FLAGS], row[FLAGS])
        messages.append(make(row))
    return messages, [ParseFailure(*f) for f in broken]
