"""Fast, strict paths for the bulk of well-formed mail; anything unusual goes the careful way.

- `split_fields`: a header block into (name, raw value) pairs, equal to what the
  stdlib's compat32 parser gives for the same block, or None when the block is
  not plainly well-formed (then the stdlib parser decides).
- `simple_addresses`: `Name <a@b>, "Last, First" <c@d>, e@f` without comments,
  groups, escapes or routes, equal to `email.utils.getaddresses`, else None.
- `parse_fetch`: imaplib's raw FETCH data for our header FETCH, else None (then
  imapclient's generic response parser decides).
Tests prove equality with the careful paths on the whole shared corpus.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_FIELD = re.compile(rb"([!-9;-~]+):[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)\r?\n")
_END = re.compile(rb"(?:\r?\n)?")


def split_fields(block: bytes) -> list[tuple[str, str]] | None:
    """Header fields as compat32's `raw_items()` gives them (folds kept, raw 8-bit as
    surrogates), or None if any line is not a plain `Name: value` or its fold."""
    fields: list[tuple[str, str]] = []
    pos, size = 0, len(block)
    while pos < size:
        match = _FIELD.match(block, pos)
        if match is None:
            end = _END.fullmatch(block, pos)
            return fields if end is not None else None
        name, value = match.group(1), match.group(2)
        if b"\r" in value.replace(b"\r\n", b""):
            return None  # a bare CR: compat32 treats it as a line break
        fields.append((name.decode("ascii"), value.decode("ascii", "surrogateescape")))
        pos = match.end()
    return fields


_ADDR = r"[^<>()\s\",;:\\@\[\]]+@[^<>()\s\",;:\\@\[\]]+"
_WS = r"[ \t\r\n]*"  # not \s: that also matches \x1c-\x1f, which the stdlib keeps
_ITEM = re.compile(
    _WS + r"(?:\"(?P<quoted>[^\"\\]*)\"" + _WS + r"<(?P<qaddr>" + _ADDR + r")>"
    r"|(?P<name>[^\"<>()\\,;:@\[\]]*?)" + _WS + r"<(?P<addr>" + _ADDR + r")>"
    r"|(?P<bare>" + _ADDR + r"))" + _WS + r"(?:,|$)"
)
_SPACES = re.compile(r"[ \t\r\n]+")


def simple_addresses(value: str) -> list[tuple[str, str]] | None:
    """The plain address lists most mail carries; None where getaddresses must decide."""
    if not value.strip(" \t\r\n") or value.rstrip(" \t\r\n").endswith(","):
        return None
    out = []
    pos = 0
    while pos < len(value):
        match = _ITEM.match(value, pos)
        if match is None or match.end() == pos:
            return None
        if match["bare"]:
            out.append(("", match["bare"]))
        elif match["qaddr"]:
            out.append((match["quoted"], match["qaddr"]))
        else:
            name = match["name"]
            if "." in name or (not name.strip() and name):
                return None  # obs-phrase dots and odd spacing: leave them to the stdlib
            out.append((_SPACES.sub(" ", name.strip()), match["addr"]))
        pos = match.end()
    return out


_MONTHS = {
    m.encode(): n
    for n, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_PREFIX = re.compile(rb"\d+ \(")
_UID = re.compile(rb"(?:^|[ (])UID (\d+)")
_FLAGS = re.compile(rb"(?:^|[ (])FLAGS \(([^()]*)\)")
_DATE = re.compile(
    rb'(?:^|[ (])INTERNALDATE "( ?\d{1,2})-([A-Z][a-z]{2})-(\d{4}) '
    rb'(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"'
)
_BODY = re.compile(rb"BODY\[HEADER\.FIELDS \([^()]*\)\] \{\d+\}$")


def _internaldate(match: re.Match[bytes]) -> datetime:
    day, mon, year, hh, mm, ss, sign, oh, om = match.groups()
    offset = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == b"+" else -1)
    return datetime(
        int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss), tzinfo=timezone(offset)
    )


FetchRecord = tuple[int, bytes, tuple[str, ...], datetime]


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
        if prefix is None or not _BODY.search(head):
            return None
        text = head[prefix.end() :] + b" " + tail
        uid, flags, date = _UID.search(text), _FLAGS.search(text), _DATE.search(text)
        if uid is None or flags is None or date is None:
            return None
        names = tuple(f.decode("ascii", "replace") for f in flags.group(1).split())
        try:
            records.append((int(uid.group(1)), literal, names, _internaldate(date)))
        except (KeyError, ValueError):
            return None
    return records
