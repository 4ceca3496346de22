"""A fast, strict path for the FETCH responses of our header FETCH: UID, FLAGS and
INTERNALDATE around the header literal (RFC 3501 7.4.2). `parse_fetch` takes imaplib's
raw FETCH data, else None (then imapclient's generic response parser decides).
tests/unit/test_fastpath.py proves equality with the generic parser.
"""

from __future__ import annotations

import re
from datetime import datetime

from inboxwatch.core.dates import iso_datetime

_PREFIX = re.compile(rb"\d+ \(")
_UID = re.compile(rb"(?:^|[ (])UID (\d+)")
_FLAGS = re.compile(rb"(?:^|[ (])FLAGS \(([^()]*)\)")
_DATE_TEXT = rb'"( ?\d{1,2})-([A-Z][a-z]{2})-(\d{4}) (\d\d:\d\d:\d\d) ([+-]\d\d)(\d\d)"'
_DATE = re.compile(rb"(?:^|[ (])INTERNALDATE " + _DATE_TEXT)
_BODY = re.compile(rb"BODY\[HEADER\.FIELDS \([^()]*\)\] (?:\{\d+\})?$")
# Gmail's FETCH items (X-GM-EXT-1): the message's and the conversation's 64-bit ids.
_GM_MSGID = re.compile(rb"(?:^|[ (])X-GM-MSGID (\d+)")
_GM_THRID = re.compile(rb"(?:^|[ (])X-GM-THRID (\d+)")
NO_PROVIDER_IDS = ("", "")


# Dovecot's order for our items, in one match: `UID n FLAGS (…) INTERNALDATE "…" BODY[…] `.
USUAL_ITEMS = (  # no CR/LF inside: it is also matched on a stream of lines
    rb"UID (\d+) FLAGS \(([^()\r\n]*)\) INTERNALDATE "
    + _DATE_TEXT
    + rb" BODY\[HEADER\.FIELDS \([^()\r\n]*\)\] "
)
_USUAL = re.compile(USUAL_ITEMS)


def _internaldate(match: re.Match[bytes], first: int) -> datetime:
    """INTERNALDATE (RFC 3501 date-time) from groups `first`..`first + 5`, in UTC."""
    day, mon, year, clock, hours, minutes = match.groups()[first - 1 : first + 5]
    return iso_datetime(
        day.decode(), mon.decode(), year.decode(), clock.decode(), hours.decode(), minutes.decode()
    )


# (UID, header block, FLAGS, INTERNALDATE, (X-GM-MSGID, X-GM-THRID) or NO_PROVIDER_IDS)
FetchRecord = tuple[int, bytes, frozenset[str], datetime, tuple[str, str]]
Items = tuple[int, frozenset[str], datetime, tuple[str, str]]
_FLAG_SETS: dict[bytes, frozenset[str]] = {}  # a mailbox has a handful of distinct flag sets


def flag_set(raw: bytes) -> frozenset[str]:
    """`\\Seen \\Answered` -> one shared frozenset per distinct text (saves ~200 B/message)."""
    found = _FLAG_SETS.get(raw)
    if found is None:
        found = frozenset(f.decode("ascii", "replace") for f in raw.split())
        if len(_FLAG_SETS) < 4096:
            _FLAG_SETS[raw] = found
    return found


def _items(
    uid: bytes,
    flags: bytes,
    date: re.Match[bytes],
    first: int,
    ids: tuple[str, str] = NO_PROVIDER_IDS,
) -> Items | None:
    try:
        return int(uid), flag_set(flags), _internaldate(date, first), ids
    except (KeyError, ValueError, OverflowError):
        return None  # an impossible date: the generic parser and its errors decide


def usual_items(match: re.Match[bytes], first: int = 1) -> Items | None:
    """UID, FLAGS and INTERNALDATE from a match of USUAL_ITEMS (its groups from `first`)."""
    return _items(match.group(first), match.group(first + 1), match, first + 2)


def _provider_ids(text: bytes) -> tuple[str, str]:
    if b"X-GM-" not in text:
        return NO_PROVIDER_IDS
    msgid, thrid = _GM_MSGID.search(text), _GM_THRID.search(text)
    return (
        msgid.group(1).decode() if msgid else "",
        thrid.group(1).decode() if thrid else "",
    )


def fetch_items(head: bytes, tail: bytes) -> Items | None:
    """UID, FLAGS, INTERNALDATE and Gmail's ids from the text around a header literal:
    `head` is what comes after `* n FETCH (` up to the literal, `tail` what follows it
    before `)`."""
    usual = _USUAL.fullmatch(head) if not tail else None
    if usual is not None:
        return usual_items(usual)
    if not _BODY.search(head):
        return None  # the literal is not our header block
    text = head + b" " + tail
    uid, flags, date = _UID.search(text), _FLAGS.search(text), _DATE.search(text)
    if uid is None or flags is None or date is None:
        return None
    return _items(uid.group(1), flags.group(1), date, 1, _provider_ids(text))


def parse_fetch(data: list[bytes | tuple[bytes, bytes]]) -> list[FetchRecord] | None:
    """(uid, header bytes, flags, INTERNALDATE) per message from imaplib's FETCH data.

    Strict: each message must be `N (… BODY[HEADER.FIELDS (…)] {n}` + literal + the
    rest of its items; anything else (an unsolicited FETCH, another layout) gives None.
    """
    records = []
    items = iter(data)
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            return None
        head, literal = item
        tail = next(items, None)
        if not isinstance(tail, bytes) or not tail.endswith(b")"):
            return None
        prefix = _PREFIX.match(head)
        if prefix is None:
            return None
        found = fetch_items(head[prefix.end() :], tail[:-1])
        if found is None:
            return None
        records.append((found[0], literal, found[1], found[2], found[3]))
    return records
