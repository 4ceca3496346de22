"""A little of a message's body, decoded, and what its MIME structure says (issue 18):
the start of its first text part (for closing messages), whether it carries an
attachment, and an iTIP calendar method and event (invitations). Pure: bytes in, text
out. Only pending messages get here, and only their first 2 KB of text is ever read.
"""

from __future__ import annotations

import base64
import binascii
import html
import quopri
import re
from collections.abc import Iterable
from email.message import Message
from typing import NamedTuple

PARTIAL = 2048  # bytes of a text part read: enough for "a few short lines" and a quote
EVENT_BYTES = 8192  # bytes of a text/calendar part read for the event's title and start
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)
_BLOCK = re.compile(r"<\s*(?:br|/p|/div|/li|/tr|/h\d|blockquote)\b[^>]*>", re.IGNORECASE)
_QUOTED_HTML = re.compile(
    r"<blockquote\b.*|<div[^>]*(?:gmail_quote|divRplyFwdMsg|moz-cite-prefix)[^>]*>.*",
    re.IGNORECASE | re.DOTALL,
)
# Not attachments: parts that travel with ordinary mail (signatures, the invitation's
# own calendar part, inline pictures of a signature).
_NOT_ATTACHED = ("application/pgp-signature", "application/pkcs7-signature", "text/calendar")


class Part(NamedTuple):
    """One leaf of a message's MIME tree, as BODYSTRUCTURE (RFC 9051 7.5.2) describes it."""

    number: str  # the part's section for BODY[…]: "1", "1.2"
    media: str  # "text/plain", lower-cased
    charset: str
    encoding: str  # Content-Transfer-Encoding, lower-cased
    disposition: str  # "attachment", "inline" or ""
    method: str  # text/calendar's iTIP method parameter, upper-cased


class Details(NamedTuple):
    """What the body adds to a pending message's headers."""

    text: str | None  # the start of its text, decoded; None when there is none
    attachment: bool
    calendar: str = ""  # iTIP METHOD: REQUEST, REPLY, CANCEL…
    title: str = ""
    start: str = ""  # DTSTART as written (20261210T100000Z, or a date)


def text_part(parts: Iterable[Part]) -> Part | None:
    """The part a reader sees first: text/plain, else text/html, never an attachment."""
    body = [p for p in parts if p.disposition != "attachment"]
    for media in ("text/plain", "text/html"):
        found = next((p for p in body if p.media == media), None)
        if found is not None:
            return found
    return None


def has_attachment(parts: Iterable[Part]) -> bool:
    for part in parts:
        if part.media in _NOT_ATTACHED:
            continue
        if part.disposition == "attachment":
            return True
        if not part.media.startswith(("text/", "image/", "multipart/", "message/delivery")):
            return True  # application/pdf and kin, even when marked inline
    return False


def calendar_part(parts: Iterable[Part]) -> Part | None:
    return next((p for p in parts if p.media == "text/calendar"), None)


def decode(raw: bytes, encoding: str, charset: str) -> str:
    """A part's bytes as text: transfer encoding, then charset (unknown: UTF-8, replaced).
    `raw` may be cut short (a partial fetch): base64 is read to its last whole group."""
    if encoding == "base64":
        clean = b"".join(raw.split())
        clean = clean[: len(clean) - len(clean) % 4]
        try:
            raw = base64.b64decode(clean)
        except (binascii.Error, ValueError):
            raw = b""
    elif encoding == "quoted-printable":
        raw = quopri.decodestring(raw)
    try:
        return raw.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def html_text(markup: str) -> str:
    """HTML-only mail as plain text, the quoted message left out."""
    markup = _QUOTED_HTML.sub("", markup)
    markup = _BLOCK.sub("\n", markup)
    return html.unescape(_TAG.sub("", markup))


def part_text(raw: bytes, part: Part) -> str:
    text = decode(raw, part.encoding, part.charset)
    return html_text(text) if part.media == "text/html" else text


def ical_event(text: str) -> tuple[str, str, str]:
    """(METHOD, SUMMARY, DTSTART) of an iCalendar object (RFC 5545, folded lines joined)."""
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    fields: dict[str, str] = {}
    for line in unfolded.splitlines():
        name, _, value = line.partition(":")
        key = name.split(";", 1)[0].strip().upper()
        if key in ("METHOD", "SUMMARY", "DTSTART") and key not in fields:
            fields[key] = value.strip().replace("\\,", ",").replace("\\;", ";")
    return fields.get("METHOD", "").upper(), fields.get("SUMMARY", ""), fields.get("DTSTART", "")


def message_parts(message: Message) -> list[tuple[Part, Message]]:
    """A parsed message's leaves, numbered as IMAP numbers them (for local mail)."""
    found: list[tuple[Part, Message]] = []

    def walk(node: Message, number: str) -> None:
        if node.is_multipart():
            for index, child in enumerate(node.get_payload(), start=1):
                walk(child, f"{number}.{index}" if number else str(index))
            return
        disposition = (node.get_content_disposition() or "").lower()
        method = str(node.get_param("method") or "").upper()
        part = Part(
            number or "1", node.get_content_type(), node.get_content_charset() or "",
            str(node.get("Content-Transfer-Encoding", "")).strip().lower(), disposition, method,
        )  # fmt: skip
        found.append((part, node))

    walk(message, "")
    return found


def details_of(message: Message) -> Details:
    """Details of a whole message (local mail: mbox, Maildir, .eml)."""
    leaves = message_parts(message)
    parts = [part for part, _ in leaves]
    raw = {part.number: node.get_payload(decode=False) for part, node in leaves}

    def body(part: Part, limit: int) -> bytes:
        value = raw[part.number]
        if not isinstance(value, str):
            return b""
        try:  # compat32 keeps 8-bit bytes as surrogates: this gives them back as sent
            return value.encode("ascii", "surrogateescape")[:limit]
        except UnicodeEncodeError:  # a message built in memory, not parsed from bytes
            return value.encode("utf-8")[:limit]

    shown = text_part(parts)
    text = part_text(body(shown, PARTIAL), shown) if shown else None
    calendar = calendar_part(parts)
    method, title, start = ("", "", "")
    if calendar is not None:
        method, title, start = ical_event(
            decode(body(calendar, EVENT_BYTES), calendar.encoding, calendar.charset)
        )
        method = method or calendar.method
    return Details(text, has_attachment(parts), method, title, start)
