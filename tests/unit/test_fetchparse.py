"""imap.fetchparse gives exactly what imapclient's FETCH parser gives, and refuses what
imapclient refuses: on hand-picked lines, and on random ones (Hypothesis).
tests/integration/test_wire_internals.py does the same on the corpus's messages as
Dovecot describes them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imapclient.exceptions import ProtocolError
from imapclient.response_parser import parse_fetch_response

from inboxwatch.imap.bodyfetch import parts_of
from inboxwatch.imap.fetchparse import fast_record, parse_fetch

MULTIPART = (
    b'7 (UID 42 PREVIEW "Hi \\"there\\" C:\\\\x \\q" BODYSTRUCTURE ((("text" "plain" '
    b'("charset" "utf-8" "format" "flowed") NIL NIL "quoted-printable" 120 4 NIL NIL NIL NIL)'
    b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 300 9 NIL NIL NIL NIL) "alternative" '
    b'("boundary" "b1") NIL NIL NIL)("text" "calendar" ("charset" "utf-8" "method" "REQUEST") '
    b'NIL NIL "base64" 800 10 NIL ("attachment" ("filename" "invite.ics")) NIL NIL)'
    b' "mixed" ("boundary" "b0") NIL NIL NIL))'
)


REFUSED = (ProtocolError, ValueError, AssertionError, IndexError, TypeError, AttributeError)


def generic(lines: list[Any]) -> dict[int, Any] | None:
    try:
        return dict(parse_fetch_response(lines, False, True))
    except REFUSED:
        return None  # imapclient refuses the line


def fast(lines: list[Any]) -> dict[int, Any] | None:
    try:
        return parse_fetch(lines, False)
    except REFUSED:
        return None


def test_a_multipart_bodystructure_and_a_quoted_preview_parse_as_imapclient_does():
    lines = [MULTIPART, b"8 (UID 43 FLAGS (\\Seen $Label1) MODSEQ (12))"]
    assert all(fast_record(line) for line in lines)  # both taken by the fast path
    parsed = parse_fetch(lines, False)
    assert parsed == generic(lines)
    assert parsed[42][b"PREVIEW"] == b'Hi "there" C:\\x \\q'  # only \\ and \" are escapes
    assert [(p.number, p.media, p.disposition, p.method) for p in parts_of(
        parsed[42][b"BODYSTRUCTURE"]
    )] == [
        ("1.1", "text/plain", "", ""),
        ("1.2", "text/html", "", ""),
        ("2", "text/calendar", "attachment", "REQUEST"),
    ]  # fmt: skip
    assert parsed[43] == {b"SEQ": 8, b"FLAGS": (b"\\Seen", b"$Label1"), b"MODSEQ": (12,)}


@pytest.mark.parametrize(
    "line",
    [
        b"1 (UID 5 X {3})",
        b'1 (UID 5 X ab"c")',  # a quote inside an atom: imapclient asserts
        b"1 (UID 5 X %)",
        b"1 (UID 5 X a[b)",  # an unclosed section
        b'1 (UID 5 X "abc)',  # an unclosed quote
        b"1 (UID 5 X (a)",  # a list left open
        b"1 (UID 5 X a))",
        b"1 (UID 5 X)",  # an uneven number of items
        b"1 (UID abc)",
        b'1 (UID 5 INTERNALDATE "01-Jan-2026 00:00:00 +0000")',  # imapclient converts it
        b"x (UID 5)",
        b"1 (UID 5) 2",
        b"1 (UID 5 X \x01)",
    ],
)
def test_what_it_does_not_take_is_left_to_imapclient(line):
    assert fast_record(line) is None
    assert fast([line, MULTIPART]) == generic([line, MULTIPART])


def test_records_with_literals_go_to_imapclient_each_alone():
    lines = [
        b"1 (UID 9 FLAGS ())",
        (b"2 (UID 10 PREVIEW {5}", b"h\xc3\xa9 ("),  # imaplib: the text, its literal,
        (b" X {2}", b"()"),  # and a second literal in the same record
        b" FLAGS (\\Seen))",  # then the record's rest
        b"1 (UID 9 MODSEQ (3))",  # merged with UID 9's first record, as imapclient does
        MULTIPART,
    ]
    parsed = parse_fetch(lines, False)
    assert parsed == generic(lines)
    assert parsed[10][b"PREVIEW"] == b"h\xc3\xa9 (" and parsed[9][b"MODSEQ"] == (3,)
    assert parse_fetch([], False) == {}


_ATOMS = st.sampled_from(
    [b"NIL", b"0", b"007", b"12", b"x", b"BODY[1]<0>", b"[a b]", b"\\Seen", b"a]b", b"$Label"]
)
_QUOTED = st.binary(max_size=12).map(
    lambda raw: b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
)
_ODD = st.sampled_from(
    [b'"', b"(", b")", b"\\", b"\t", b"\r\n", b"[", b'x"y"', b"\x00", b"{3}", b"%"]
)


def _lists(leaves: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=5).map(lambda xs: b"(" + b" ".join(xs) + b")"),
        max_leaves=20,
    )


# Mostly well-formed values (the fast path's work), some with a stray byte (its refusals).
_VALUES = st.one_of(_lists(st.one_of(_ATOMS, _QUOTED)), _lists(st.one_of(_ATOMS, _QUOTED, _ODD)))
_NAMES = st.sampled_from([b"FLAGS", b"PREVIEW", b"BODYSTRUCTURE", b"BODY", b"X", b"UID"])
_UIDS = st.sampled_from([b"UID 7 ", b"uid 0 ", b"UID 12 ", b""])


def _item(name: bytes, value: bytes) -> bytes:
    if name.startswith(b"BODY"):  # a list mostly, as a server sends it
        value = b"(" + value + b" " + value + b")"
    return name + b" " + value


_LINES = st.builds(
    lambda seq, uid, items: seq + b" (" + uid + b" ".join(_item(*i) for i in items) + b")",
    st.sampled_from([b"1", b"22", b"3", b"x"]),
    _UIDS,
    st.lists(st.tuples(_NAMES, _VALUES), max_size=4),
)


def generic_each(lines: list[Any]) -> dict[int, Any] | None:
    """imapclient's parse of each line on its own, as imaplib hands them over (a response
    ends at its CRLF outside a literal). Given the list at once, imapclient reads it as one
    stream, so a line with a "(" unclosed would take in the next: parse_fetch refuses it."""
    parsed: dict[int, Any] = {}
    for line in lines:
        one = generic([line])
        if one is None:
            return None
        for key, data in one.items():
            parsed.setdefault(key, {}).update(data)
    return parsed


@settings(max_examples=3000, deadline=None)
@given(st.lists(_LINES, min_size=1, max_size=3))
def test_random_lines_parse_as_imapclient_parses_them(lines):
    assert fast(lines) == generic_each(lines)  # None: both refuse
