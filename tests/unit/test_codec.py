"""The worker pipe's codec (imap.codec): every record crosses unchanged, field by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.mailgen import messages as generated
from inboxwatch.core.model import Address, MessageMeta, ParseFailure
from inboxwatch.core.parse import parse_headers
from inboxwatch.imap.codec import decode_scan, encode_scan
from inboxwatch.local.source import _header_block
from tests.conftest import NOW
from tests.integration.test_hostile import hostile_messages

H = timedelta(hours=1)


def parsed_blocks() -> list:
    blocks = [_header_block(m) for _f, m, _w, _fl in generated(500, NOW)]
    blocks += [_header_block(m) for m in hostile_messages()]
    flags = [(), ("\\Seen",), ("\\Seen", "\\Answered", "$Label")]
    return [
        parse_headers(block, "INBOX", n, NOW - n * H, flags[n % 3])
        for n, block in enumerate(blocks)
    ]


def test_records_cross_the_pipe_unchanged():
    parsed = parsed_blocks()
    metas = [p for p in parsed if not isinstance(p, ParseFailure)]
    failures = [p for p in parsed if isinstance(p, ParseFailure)]
    odd = metas[0]._replace(
        received=datetime(1, 1, 1, tzinfo=UTC), date=datetime(9999, 12, 31, 23, 59, 59, 999999, UTC)
    )
    sent = [*metas, odd, metas[1]._replace(sender=None, date=None)]
    back, back_failures = decode_scan(encode_scan(sent, [*failures, ParseFailure("F", 9, "why")]))
    assert back == sent
    assert back_failures == [*failures, ParseFailure("F", 9, "why")]
    assert any(m.sender and m.sender.name for m in back)
    # Equal addresses stay one object, as the parser shares them.
    senders = {m.sender.address: m.sender for m in back if m.sender}
    assert all(m.sender is senders[m.sender.address] for m in back if m.sender)


def every_field_set() -> MessageMeta:
    """A record whose every field differs from its default (and from the others')."""
    anna = Address("Anna", "anna@client.example")
    values = {
        "folder": "INBOX/Kunden",
        "uid": 4711,
        "message_id": "<a@client.example>",
        "in_reply_to": ("<b@x>",),
        "references": ("<c@x>", "<b@x>"),
        "subject": "Rechnung",
        "sender": anna,
        "received": datetime(2026, 11, 22, 9, 12, tzinfo=UTC),
        "date": datetime(2026, 11, 22, 10, 12, tzinfo=UTC),
        "reply_to": (Address("", "billing@client.example"),),
        "to": (Address("Me", "me@example.com"), anna),
        "cc": (Address("Bo", "bo@example.com"),),
        "flags": frozenset({"\\Seen", "$Label"}),
        "auto_submitted": "auto-replied",
        "precedence": "bulk",
        "list_headers": True,
        "content_type": "multipart/report",
        "null_sender": True,
        "autoreply_header": True,
        "sender_ambiguous": True,
        "provider_id": "1278455344230334865",
        "thread_hint": "1266894439832287888",
        "list_id": True,
        "machine": "bulk:Feedback-ID",
    }
    # A field added to MessageMeta must be added here too, or this fails.
    assert set(values) == set(MessageMeta._fields)
    meta = MessageMeta(**values)  # type: ignore[arg-type]
    defaults = MessageMeta._field_defaults
    assert all(getattr(meta, name) != default for name, default in defaults.items())
    return meta


def test_every_field_crosses_by_name():
    meta = every_field_set()
    (back,), failures = decode_scan(encode_scan([meta], []))
    assert failures == []
    for name in MessageMeta._fields:
        assert getattr(back, name) == getattr(meta, name), name
    assert back.to[1] is back.sender  # one Address object, as the parser shares them
