"""imapclient's FETCH response parser, for records without a literal, at a fraction of
its cost: imapclient lexes a byte at a time in Python (~130 µs for a BODYSTRUCTURE +
PREVIEW record, 0.14 s of a 10k audit's body checks); here one regex takes a token.

`parse_fetch` gives what `imapclient.response_parser.parse_fetch_response` gives (keyed
by UID, `b"SEQ"` added, BODYSTRUCTURE nested as its BodyData: a multipart's children as a
list in front). A record it does not take on (a literal, an INTERNALDATE or ENVELOPE, a
token imapclient would refuse) goes to imapclient's parser, that record alone.
tests/unit/test_fetchparse.py proves the two equal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from imapclient.response_parser import parse_fetch_response

# imapclient's lexer (response_lexer.py): whitespace is SP, TAB, CR, LF; an atom is any
# run of bytes but ` ()%"[` and controls, a `[…]` inside it taken whole (`BODY[1]<0>`);
# a quoted string keeps a backslash unless it escapes `\` or `"` (RFC 3501 4.3). Runs, not
# single bytes, per repetition (3× faster), possessive (Python 3.11) so that a failed
# match cannot backtrack through nested repeats (exponential: a long atom before a quote,
# an unclosed quote); anything else is caught by the last group,
# so `findall` leaves nothing unread: a quote right after an atom (imapclient refuses it),
# `%`, a control byte, an unclosed quote or bracket.
_TOKEN = re.compile(
    rb'[ \t\r\n]*+(?:(\()|(\))|"((?:[^"\\]++|\\.)*+)"'
    rb'|((?:[^ \t\r\n()%"\[\x00-\x1f]++|\[[^\]]*+\])++)(?!")|([^ \t\r\n]))',
    re.DOTALL,
)
_ESCAPED = re.compile(rb'\\([\\"])')
_UNTAKEN = (b"INTERNALDATE", b"ENVELOPE")  # imapclient converts these; we never ask for them


class _Refuse(Exception):
    """Something imapclient's parser would read differently, or refuse."""


def _atom(token: bytes) -> Any:
    if token == b"NIL":
        return None
    if token[:1] == b"{":
        raise _Refuse  # a literal: imaplib splits the record around it
    if token.isdigit() and (token[:1] != b"0" or len(token) == 1):
        return int(token)  # as imapclient: `0123` stays bytes
    return token


def _values(line: bytes) -> list[Any]:
    """The line's top-level values, each parenthesised list a tuple."""
    outer: list[list[Any]] = []
    values: list[Any] = []
    for opened, closed, quoted, atom, odd in _TOKEN.findall(line):
        if atom:
            values.append(_atom(atom))
        elif opened:
            outer.append(values)
            values = []
        elif closed:
            if not outer:
                raise _Refuse
            done = tuple(values)
            values = outer.pop()
            values.append(done)
        elif odd:
            raise _Refuse
        else:
            values.append(_ESCAPED.sub(rb"\1", quoted) if b"\\" in quoted else quoted)
    if outer:
        raise _Refuse  # a list left open
    return values


def _body(value: Any) -> tuple[Any, ...]:
    """imapclient's BodyData.create: a multipart's leading child lists become one list."""
    if not isinstance(value, tuple) or not value:
        raise _Refuse
    if not isinstance(value[0], tuple):
        return value
    count = next((i for i, part in enumerate(value) if isinstance(part, bytes)), 0)
    if not count:  # a multipart without its subtype (RFC 3501 7.4.2): imapclient doubles
        raise _Refuse  # its last child there; its own parser may keep that
    return ([_body(part) for part in value[:count]], *value[count:])


def _record(line: bytes) -> tuple[int, dict[bytes, Any]]:
    values = _values(line)
    if len(values) != 2 or not isinstance(values[0], int) or not isinstance(values[1], tuple):
        raise _Refuse
    seq, items = values
    if len(items) % 2:
        raise _Refuse
    key, data = seq, {b"SEQ": seq}
    for name, value in zip(items[::2], items[1::2], strict=True):
        if not isinstance(name, bytes):
            raise _Refuse
        word = name.upper()
        if word in _UNTAKEN:
            raise _Refuse
        if word == b"UID":
            if not isinstance(value, int):
                raise _Refuse
            key = value
        elif word in (b"BODY", b"BODYSTRUCTURE"):
            data[word] = _body(value)
        else:
            data[word] = value
    return key, data


def fast_record(line: bytes) -> tuple[int, dict[bytes, Any]] | None:
    """One `seq (…)` line as (UID, items), or None if imapclient's parser must read it."""
    try:
        return _record(line)
    except _Refuse:
        return None


def parse_fetch(lines: Sequence[Any], normalise_times: bool) -> dict[int, dict[bytes, Any]]:
    """imaplib's FETCH data parsed, keyed by UID, as imapclient parses it: each record
    by `fast_record` where it can, else (a literal, say) by imapclient; raises as it does."""
    parsed: dict[int, dict[bytes, Any]] = {}
    split: list[Any] = []  # a record with literals, as imaplib cut it: (text, literal)…, tail

    def generic(items: list[Any]) -> None:
        for key, data in parse_fetch_response(items, normalise_times, True).items():
            parsed.setdefault(key, {}).update(data)

    for item in lines:
        if isinstance(item, tuple) or (split and isinstance(split[-1], tuple)):
            split.append(item)  # imaplib reads on after a literal: the record's rest
            continue
        if split:
            generic(split)
            split = []
        found = fast_record(item) if isinstance(item, bytes) else None
        if found is None:
            generic([item])
        else:
            parsed.setdefault(found[0], {}).update(found[1])
    if split:
        generic(split)
    return parsed
