"""A little of a pending message's body (issue 18): BODYSTRUCTURE for its parts
(attachments, an invitation), the server's PREVIEW (RFC 8970) where it offers one, else
the first text part's first 2 KB (`BODY.PEEK[n]<0.2048>`), and a text/calendar part's
start for the event's title and time. Never a whole body; always PEEK (no \\Seen)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple

from inboxwatch.core.bodytext import (
    EVENT_BYTES,
    PARTIAL,
    Details,
    Part,
    calendar_part,
    decode,
    has_attachment,
    ical_event,
    part_text,
    text_part,
)

Deadline = Callable[[str], AbstractContextManager[None]]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def _params(value: Any) -> dict[str, str]:
    items = list(value) if isinstance(value, list | tuple) else []
    return {_text(k).lower(): _text(v) for k, v in zip(items[::2], items[1::2], strict=False)}


def _disposition(fields: Sequence[Any]) -> str:
    """The extension data's (disposition, params) pair, wherever the part's kind put it."""
    for field in fields:
        if isinstance(field, tuple) and field and isinstance(field[0], bytes):
            kind = field[0].lower()
            if kind in (b"attachment", b"inline"):
                return kind.decode()
    return ""


def parts_of(body: Any, number: str = "") -> list[Part]:
    """BODYSTRUCTURE (RFC 9051 7.5.2) as leaves, each with the section to fetch it by."""
    if body and isinstance(body[0], list):  # multipart: (children, subtype, …)
        found: list[Part] = []
        for index, child in enumerate(body[0], start=1):
            found += parts_of(child, f"{number}.{index}" if number else str(index))
        return found
    media = f"{_text(body[0])}/{_text(body[1])}".lower()
    params = _params(body[2])
    encoding = _text(body[5]).lower()
    return [
        Part(
            number or "1", media, params.get("charset", ""), encoding,
            _disposition(body[7:]), params.get("method", "").upper(),
        )
    ]  # fmt: skip


class DetailsAsked(NamedTuple):
    """Body details asked of the server (`ask_details`), their answer not read yet (not
    imap.answers.Asked, an EXAMINE's)."""

    tag: bytes | None
    uids: list[int]
    preview: bool


def ask_details(client: Any, uids: Sequence[int], preview: bool) -> DetailsAsked:
    """Send the FETCH of BODYSTRUCTURE (and PREVIEW, where offered) for `uids` in the
    selected folder; `details_answer` reads it, so that the answer travels while the
    scan works (core.bodies)."""
    items = ["BODYSTRUCTURE", "PREVIEW"] if preview else ["BODYSTRUCTURE"]
    wanted = list(uids)
    return DetailsAsked(client.fetch_send(wanted, items), wanted, preview)


def details_answer(client: Any, asked: DetailsAsked, deadline: Deadline) -> dict[int, Details]:
    """Details of the asked messages: two or three commands whatever their number (the
    asked FETCH, then each text part size at once, then the invitations' events)."""
    preview = asked.preview
    with deadline("FETCH BODYSTRUCTURE"):
        answers = client.fetch_answer(asked.tag, asked.uids)
    parts = {}
    for uid, data in answers.items():
        try:
            parts[uid] = parts_of(data[b"BODYSTRUCTURE"])
        except (KeyError, IndexError, TypeError, ValueError):
            continue  # a server's odd answer: that message stays as its headers judged it
    texts: dict[int, str | None] = {uid: None for uid in parts}
    if preview:
        texts.update({uid: _text(answers[uid].get(b"PREVIEW")) for uid in parts})
    else:
        shown = {uid: text_part(found) for uid, found in parts.items()}
        raw = _sections(client, {u: p for u, p in shown.items() if p}, PARTIAL, deadline)
        texts.update(
            {uid: part_text(raw[uid], part) for uid, part in shown.items() if part and uid in raw}
        )
    invites = {uid: p for uid, found in parts.items() if (p := calendar_part(found))}
    events = _sections(client, invites, EVENT_BYTES, deadline)
    details = {}
    for uid, found in parts.items():
        method, title, start = ("", "", "")
        if uid in events:
            part = invites[uid]
            method, title, start = ical_event(decode(events[uid], part.encoding, part.charset))
            method = method or part.method
        details[uid] = Details(texts[uid], has_attachment(found), method, title, start)
    return details


def _sections(
    client: Any, wanted: dict[int, Part], limit: int, deadline: Deadline
) -> dict[int, bytes]:
    """The first `limit` bytes of each message's part, one FETCH per part number."""
    by_number: dict[str, list[int]] = {}
    for uid, part in wanted.items():
        by_number.setdefault(part.number, []).append(uid)
    raw: dict[int, bytes] = {}
    for number, uids in by_number.items():
        item = f"BODY.PEEK[{number}]<0.{limit}>"
        with deadline(f"FETCH {item}"):
            answers = client.fetch(uids, [item])
        key = f"BODY[{number}]<0>".encode()
        raw.update({uid: bytes(data.get(key) or b"") for uid, data in answers.items()})
    return raw
