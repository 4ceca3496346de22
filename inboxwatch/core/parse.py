"""Header bytes -> MessageMeta, tolerant of broken and hostile mail.

The fast path splits a plain header block with one regex (`fast_fields`) and
takes the usual forms of addresses and dates by regex too; a block it does not
take goes to the stdlib parser in `compat32` mode (the modern
`email.policy.default` is ~6x slower per message and can go quadratic on
pathological headers), and mail-parser is the last resort. Anything displayed
is stripped of CR/LF and control characters here, at the edge, so no later
layer has to remember to.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from sys import intern
from typing import Any

from inboxwatch.core.addrlist import simple_addresses
from inboxwatch.core.dates import iso_datetime
from inboxwatch.core.machine import machine_mark
from inboxwatch.core.model import Address, MessageMeta, ParseFailure

log = logging.getLogger(__name__)

# The header fields inboxwatch needs; the IMAP source fetches exactly these.
HEADER_FIELDS = (
    "Message-ID",
    "In-Reply-To",
    "References",
    "Subject",
    "From",
    "Reply-To",
    "To",
    "Cc",
    "Date",
    "Auto-Submitted",
    "Precedence",
    "List-Id",
    "List-Unsubscribe",
    "Content-Type",
    "Return-Path",
    "X-Autoreply",
    "X-Autorespond",
    # Machine-sent mail without the standard marks (issue 18): _machine below.
    "List-Post",
    "List-Unsubscribe-Post",
    "Feedback-ID",
    "X-MC-User",
    "X-SG-EID",
    "X-Mailer",
    "X-GitHub-Reason",
    "X-GitLab-Project",
    "X-JIRA-FingerPrint",
    "X-Bugzilla-Reason",
    "X-MS-Exchange-Inbox-Rules-Loop",
    "X-Auto-Response-Suppress",
)

MAX_HEADER_BYTES = 64 * 1024  # bounded cost: a 100 KB subject or 20,000 ids is cut here
MAX_REFERENCES = 50  # the last N References are the ones that link a reply
MAX_ADDRESSES = 100
MAX_ADDRESS_FIELD = 16 * 1024
MAX_SUBJECT = 998  # RFC 5322 line limit; the display layer cuts further
CACHE_SIZE = 1 << 15
_MSGID = re.compile(r"<[^<>\s]{1,500}>")
_ADDRLIKE = re.compile(r"[^\s<>()\",;:@]+@[^\s<>()\",;:@]+")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_SPACE = re.compile(r"\s+")
_PARSER = BytesHeaderParser(policy=compat32)


_ASCII_CONTROLS = {c: None for c in range(32)} | {9: " ", 10: " ", 13: " ", 127: None}


def clean_text(value: str, limit: int = MAX_SUBJECT) -> str:
    """Fold whitespace and drop control/format characters (CR/LF, NUL, bidi overrides)."""
    value = value[: limit * 2]
    if value.isascii():  # fast path: in ASCII only Cc (0-31, 127) are to drop
        if value.isprintable() and "  " not in value:
            return value.strip()[:limit]  # nothing to drop or fold: most header values
        return _SPACE.sub(" ", value.translate(_ASCII_CONTROLS)).strip()[:limit]
    kept = []
    for ch in value:
        if ch in "\r\n\t":
            kept.append(" ")
        elif unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"):
            kept.append(ch)
    return _SPACE.sub(" ", "".join(kept)).strip()[:limit]


def _unescape_raw(value: str) -> str:
    """compat32 keeps raw 8-bit bytes as surrogates: read them as UTF-8, else Latin-1."""
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_words(value: str) -> str:
    """RFC 2047 encoded-words to text; unknown charsets degrade, never raise."""
    if not value.isascii():
        value = _unescape_raw(value)
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError, AssertionError):
        parts = []
        for chunk, charset in decode_header(value):
            if isinstance(chunk, str):
                parts.append(chunk)
                continue
            try:
                parts.append(chunk.decode(charset or "ascii", "replace"))
            except LookupError:
                parts.append(chunk.decode("utf-8", "replace"))
        return "".join(parts)


def message_ids(value: str | None, keep_last: int = MAX_REFERENCES) -> tuple[str, ...]:
    """The `<id>` tokens of a header, lower-cased host kept as written (RFC 5322 3.6.4).

    Interned: an id recurs in the In-Reply-To and References of every later message of
    its thread, so a mailbox holds each once (~15 MB less per 100,000 messages)."""
    if not value:
        return ()
    if 2 < len(value) < 503 and value[0] == "<" and value[-1] == ">" and _one_id(value):
        return (intern(value),)  # what the regex would find, without it: most Message-IDs
    return tuple(map(intern, _MSGID.findall(value[:MAX_HEADER_BYTES])[-keep_last:]))


def _one_id(value: str) -> bool:
    """`<...>` holds no other `<`, `>` or white space (str.isprintable is False for all
    white space but the ASCII space; for raw 8-bit too, which then takes the regex)."""
    return (
        value.count("<") == 1 and value.count(">") == 1 and " " not in value and value.isprintable()
    )


def _parse_addresses(value: str, fast: bool) -> list[tuple[str, str]]:
    simple = simple_addresses(value) if fast else None
    return simple if simple is not None else getaddresses([value])


# Header values repeat across a mailbox (the owner in every To, a customer's From in each
# of their messages): the derived values are cached by raw text, and shared, which also
# keeps 100,000 messages' worth of equal Address objects to one copy each.
@lru_cache(maxsize=CACHE_SIZE)
def _addresses(values: tuple[str, ...], fast: bool = True) -> tuple[Address, ...]:
    out: list[Address] = []
    pairs = [p for v in values for p in _parse_addresses(decode_words(v)[:MAX_ADDRESS_FIELD], fast)]
    for name, raw_addr in pairs:
        addr = clean_text(raw_addr, 320)
        if "@" not in addr:
            continue
        out.append(Address(clean_text(name, 200), addr))
        if len(out) >= MAX_ADDRESSES:
            break
    return tuple(out)


@lru_cache(maxsize=CACHE_SIZE)
def _sender(raw: str, fast: bool) -> tuple[Address | None, bool, bool]:
    """From -> (first address, names two addresses?, is the null sender `<>`?)."""
    raw_from = decode_words(raw)
    senders = _addresses((raw_from,), fast) if raw_from else ()
    return (senders[0] if senders else None, _is_ambiguous(raw_from), raw_from.strip() == "<>")


def _subject(raw: str) -> str:
    # Not cached: nearly every message has a subject of its own (a reply adds "Re: "),
    # and a cache miss costs more than the work.
    return clean_text(decode_words(raw))


@lru_cache(maxsize=CACHE_SIZE)
def _token(raw: str, limit: int = 100) -> str:
    return clean_text(raw, limit).lower()


def media_type(raw: str) -> str:
    """`multipart/report`: Content-Type without its parameters (each boundary is unique,
    so the whole value would neither cache nor share)."""
    return _token(raw.partition(";")[0], 200)


def _is_ambiguous(raw_from: str) -> bool:
    """True when a From header names two different addresses.

    Python before 3.11.10 parses `victim@ext.example)<me@mydomain>` as one of
    the two (CVE-2023-27043); such a header must never count as the owner's.
    """
    if raw_from.count("@") < 2:
        return False
    unquoted = _QUOTED.sub("", raw_from)
    return len({a.lower() for a in _ADDRLIKE.findall(unquoted)}) > 1


_DATE = re.compile(
    r"[ \t]*(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep"
    r"|Oct|Nov|Dec) (\d{4}) (\d\d:\d\d:\d\d) ([+-]\d\d)(\d\d)[ \t]*"
)


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    plain = _DATE.fullmatch(value)  # RFC 5322 3.3's usual form, without a comment
    if plain is not None:
        try:
            return iso_datetime(*plain.groups())
        except (ValueError, OverflowError):
            pass  # out of range (day 0, hour 24, a zone of 24 hours...): the stdlib decides
    try:
        parsed = parsedate_to_datetime(clean_text(value, 200))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _unfold(value: str) -> str:
    """RFC 5322 2.2.3: a fold is a line break before white space; unfolding drops the break.
    str.replace takes the CRLF folds IMAP sends at C speed (the regex with its optional CR
    tries every offset); a value with any other line break left goes to the regex whole."""
    unfolded = value.replace("\r\n ", " ").replace("\r\n\t", "\t")
    return unfolded if "\n" not in unfolded else _FOLD.sub("", value)


# Anchored at line starts: a search from every offset of a long broken line is quadratic.
# The blanks after the colon are possessive (`*+`): the value's `[^\r\n]*` matches blanks
# too, so on a blank run with no line end (a padded field cut at MAX_HEADER_BYTES) a
# backtracking `[ \t]*` would try every split of the run — quadratic, minutes at 64 KB.
# Giving blanks back could never make a match: the value must still end at the same break.
_FIELD = re.compile(r"(?m)^([!-9;-~]+):[ \t]*+([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)\r?\n")
# The same where no line is folded (most blocks): without the fold group it splits ~15% faster.
_LINE = re.compile(r"(?m)^([!-9;-~]+):[ \t]*+([^\r\n]*)\r?\n")


def fast_fields(block: bytes) -> tuple[list[str], list[str], bool] | None:
    """Header names and values as compat32's `raw_items()` gives them (folds kept, raw
    8-bit as surrogates), in one C-speed regex pass, and whether any value is folded;
    None unless the block is nothing but plain `Name: value` lines and their folds
    (then the stdlib parser decides)."""
    text = block.decode("ascii", "surrogateescape")
    folded = "\n " in text or "\n\t" in text
    parts = (_FIELD if folded else _LINE).split(text)
    gaps = parts[::3]  # text between matches: none, but an optional final line break
    if any(gaps[:-1]) or gaps[-1] not in ("", "\n", "\r\n"):
        return None
    return parts[1::3], parts[2::3], folded


_LISTS = ("to", "cc", "reply-to")


class _Headers:
    """Raw header values by lower-cased name: the first of each, and every To/Cc/Reply-To.

    compat32's `msg.get` turns raw 8-bit bytes into U+FFFD; `raw_items` keeps
    them (as surrogates) so `_unescape_raw` can read them as UTF-8 or Latin-1.
    """

    def __init__(self, names: list[str], values: list[str], folded: bool = True) -> None:
        names = list(map(str.lower, names))
        if folded:
            values = [_unfold(v) if "\n" in v else v for v in values]
        # Reversed, so the first of a repeated field is the one kept (as `Message.get`).
        self.first: dict[str, str] = dict(zip(reversed(names), reversed(values), strict=True))
        self.lists: dict[str, tuple[str, ...]] = {}
        repeated = len(self.first) != len(names)
        for key in _LISTS:
            if key in self.first:
                self.lists[key] = (
                    tuple(v for n, v in zip(names, values, strict=True) if n == key)
                    if repeated
                    else (self.first[key],)
                )

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, Any]]) -> _Headers:
        pairs = list(items)
        values = [str(value) for _, value in pairs]
        return cls([name for name, _ in pairs], values, any("\n" in v for v in values))


def _meta_from_headers(
    h: _Headers,
    folder: str,
    uid: int,
    received: datetime | None,
    flags: frozenset[str],
    fast: bool,
) -> MessageMeta:
    get, lists = h.first.get, h.lists.get
    sender, ambiguous, null_from = _sender(get("from", ""), fast)
    date = _date(get("date"))
    when = received or date
    if when is None:
        raise ValueError("no usable date (no INTERNALDATE and no valid Date header)")
    ids = message_ids(get("message-id"), 1)
    return MessageMeta(
        folder,
        uid,
        ids[0] if ids else None,
        message_ids(get("in-reply-to"), 1),
        message_ids(get("references")),
        _subject(get("subject", "")),
        sender,
        when,
        date,
        _addresses(lists("reply-to", ()), fast),
        _addresses(lists("to", ()), fast),
        _addresses(lists("cc", ()), fast),
        flags,
        _token(get("auto-submitted", "")),
        _token(get("precedence", "")),
        bool(get("list-id") or get("list-unsubscribe")),
        media_type(get("content-type", "")),
        # An empty Return-Path, or a From of just "<>" (McAfee's DSNs), is the null sender.
        get("return-path", "").strip() == "<>" or null_from,
        bool(get("x-autoreply") or get("x-autorespond")),
        ambiguous,
        list_id=bool(get("list-id")),
        machine=machine_mark(get),
    )


def parse_headers(
    header: bytes,
    folder: str,
    uid: int,
    received: datetime | None = None,
    flags: Iterable[str] = (),
    fast: bool = True,
) -> MessageMeta | ParseFailure:
    """Parse one message's header block; returns a ParseFailure instead of raising.

    `fast` takes the strict regex paths (addrlist, dates) where the mail is plainly
    well-formed; `fast=False` is the careful path they are tested against.
    """
    header = header[:MAX_HEADER_BYTES]
    fields = fast_fields(header) if fast else None
    headers = _Headers(*fields) if fields is not None else _careful_headers(header, folder, uid)
    if headers is None:
        return ParseFailure(folder, uid, "unparsable header block")
    try:
        return _meta_from_headers(headers, folder, uid, received, frozenset(flags), fast)
    except Exception as exc:  # unparsable mail is counted, never fatal
        return ParseFailure(folder, uid, clean_text(str(exc), 200))


def _careful_headers(header: bytes, folder: str, uid: int) -> _Headers | None:
    """The stdlib parser (compat32), and mail-parser where even that fails."""
    msg: Message | None
    try:
        msg = _PARSER.parsebytes(header)
    except Exception as exc:  # the stdlib parser's bugs must not end a scan
        log.debug("stdlib parse failed for %s/%s: %r; trying mail-parser", folder, uid, exc)
        msg = _careful_message(header)
    return None if msg is None else _Headers.from_items(msg.raw_items())


def _careful_message(header: bytes) -> Message | None:
    """mail-parser's more forgiving route, for a header block the fast path rejected."""
    import mailparser

    try:
        message: Message = mailparser.parse_from_bytes(header).message
    except Exception:  # give up on this one message only
        return None
    return message
