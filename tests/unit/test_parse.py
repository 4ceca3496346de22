"""Header parsing: RFC 2047, hostile input, bounded cost."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inboxwatch.core import parse
from inboxwatch.core.model import MessageMeta, ParseFailure
from inboxwatch.core.parse import clean_text, message_ids, parse_headers

WHEN = datetime(2026, 11, 20, tzinfo=UTC)


def meta(raw: str | bytes, received: datetime | None = WHEN) -> MessageMeta:
    data = raw.encode() if isinstance(raw, str) else raw
    result = parse_headers(data, "INBOX", 7, received, ["\\Seen"])
    assert isinstance(result, MessageMeta), result
    return result


def test_basic_fields():
    m = meta(
        'From: "Keller, Anna" <Anna@Client.example>\r\nTo: me@x.example, b@y.example\r\n'
        "Cc: c@z.example\r\nReply-To: help@client.example\r\nSubject: Hi\r\n"
        "Message-ID: <a@b>\r\nIn-Reply-To: <p@b>\r\nReferences: <r1@b> <r2@b>\r\n"
        "Date: Fri, 20 Nov 2026 10:00:00 +0100\r\n\r\n"
    )
    assert m.sender is not None and m.sender.name == "Keller, Anna"
    assert m.sender.key == "anna@client.example"
    assert [a.address for a in m.to] == ["me@x.example", "b@y.example"]
    assert m.cc[0].address == "c@z.example" and m.reply_to[0].address == "help@client.example"
    assert (m.message_id, m.in_reply_to, m.references) == (
        "<a@b>",
        ("<p@b>",),
        ("<r1@b>", "<r2@b>"),
    )
    assert m.date == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert m.received == WHEN and m.flags == frozenset({"\\Seen"})


def test_rfc2047_and_raw_8bit():
    m = meta(
        "Subject: =?iso-8859-1?q?Gr=FC=DFe?= =?utf-8?b?YXVz?= Wien\r\n"
        "From: =?utf-8?q?J=C3=B6rg?= <j@x.example>\r\n\r\n"
    )
    assert m.subject == "Grüßeaus Wien"  # RFC 2047 6.2: space between encoded words is dropped
    assert m.sender is not None and m.sender.name == "Jörg"
    raw = meta("Subject: caf\xe9 latin-1\r\n\r\n".encode("latin-1"))
    assert raw.subject == "café latin-1"
    utf8 = meta("Subject: caf\u00e9 utf-8\r\n\r\n".encode())
    assert utf8.subject == "café utf-8"


def test_unknown_charset_degrades_without_error():
    m = meta("Subject: =?x-unknown-42?q?abc?= ok\r\n\r\n")
    assert "abc" in m.subject


def test_control_characters_and_header_injection_are_stripped():
    m = meta("Subject: =?utf-8?q?a=0D=0ABcc:_x@y=00=1B[31m_=E2=80=AEevil?=\r\n\r\n")
    assert m.subject == "a Bcc: x@y[31m evil"
    assert clean_text("a\r\n\tb\x00c\u202ed") == "a bcd"


def test_ambiguous_from_is_flagged_cve_2023_27043():
    m = meta("From: victim@ext.example)<me@mydomain.example>\r\n\r\n")
    assert m.sender_ambiguous
    same = meta("From: me@mydomain.example <me@mydomain.example>\r\n\r\n")
    assert not same.sender_ambiguous
    quoted = meta('From: "a@b.example" <me@mydomain.example>\r\n\r\n')
    assert not quoted.sender_ambiguous


def test_bounded_cost_for_huge_headers():
    refs = " ".join(f"<id{i}@x>" for i in range(20_000))
    m = meta(f"Subject: {'x' * 100_000}\r\nReferences: {refs}\r\nTo: {';' * 20_000}\r\n\r\n")
    assert len(m.subject) <= parse.MAX_SUBJECT
    assert len(m.references) <= parse.MAX_REFERENCES


def test_missing_message_id_and_dates():
    m = meta("Subject: x\r\nDate: not a date\r\n\r\n")
    assert m.message_id is None and m.date is None
    # Without INTERNALDATE the Date header is the clock; with neither: a counted failure.
    assert meta("Date: Fri, 20 Nov 2026 10:00:00 +0000\r\n\r\n", None).received.day == 20
    failure = parse_headers(b"Subject: x\r\n\r\n", "INBOX", 3)
    assert isinstance(failure, ParseFailure) and "no usable date" in failure.reason


def test_message_ids_keeps_the_last_n():
    assert message_ids("<a@x> junk <b@x>\r\n <c@x>", 2) == ("<b@x>", "<c@x>")
    assert message_ids(None) == ()


def test_careful_parser_takes_over_when_the_fast_path_breaks(monkeypatch):
    class Broken:
        def parsebytes(self, data: bytes) -> None:
            raise RuntimeError("boom")

    monkeypatch.setattr(parse, "_PARSER", Broken())
    raw = b"From: a@b.example\r\nSubject: via mail-parser\r\nMessage-ID: <m@p>\r\n\r\n"
    m = parse_headers(raw, "INBOX", 1, WHEN, fast=False)
    assert isinstance(m, MessageMeta)
    assert m.subject == "via mail-parser" and m.message_id == "<m@p>"


@pytest.mark.parametrize("junk", [b"", b"\x00\x01\x02", b":::\r\n\r\n", b"\xff" * 1000])
def test_junk_never_raises(junk):
    assert isinstance(parse_headers(junk, "INBOX", 1, WHEN), MessageMeta | ParseFailure)


@pytest.mark.parametrize(
    "value",
    [
        "<a@b>",
        "<a b@c>",
        "<a\t@b>",
        "<a\u00a0@b>",
        "<a@b> ",
        "<<a@b>",
        "<a@b>>",
        "<>",
        "<x>",
        "<a@b><c@d>",
        "<a\udcff@b>",
        f"<{'x' * 500}>",
        f"<{'x' * 501}>",
        "<a\u2028b>",
        "a@b",
    ],
)
def test_a_lone_message_id_shortcut_agrees_with_the_regex(value):
    assert message_ids(value) == tuple(parse._MSGID.findall(value)[-50:])
    assert message_ids(value, 1) == tuple(parse._MSGID.findall(value)[-1:])


@pytest.mark.parametrize(
    ("header", "machine"),
    [
        ("List-Unsubscribe-Post: List-Unsubscribe=One-Click", "bulk:List-Unsubscribe-Post"),
        ("Feedback-ID: 1:campaign:123:esp", "bulk:Feedback-ID"),
        ("X-MC-User: 1a2b3c", "bulk:X-MC-User"),
        ("X-SG-EID: abc", "bulk:X-SG-EID"),
        ("X-Mailer: MailChimp Mailer - **CID1234**", "bulk:X-Mailer"),
        ("List-Post: NO", "bulk:List-Post: NO"),
        ("X-GitHub-Reason: mention", "notification:X-GitHub-Reason"),
        ("X-GitLab-Project: web", "notification:X-GitLab-Project"),
        ("X-JIRA-FingerPrint: 0af3", "notification:X-JIRA-FingerPrint"),
        ("X-Bugzilla-Reason: AssignedTo", "notification:X-Bugzilla-Reason"),
        (
            "X-MS-Exchange-Inbox-Rules-Loop: me@x.example",
            "automated:X-MS-Exchange-Inbox-Rules-Loop",
        ),
        ("X-Auto-Response-Suppress: All", "automated:X-Auto-Response-Suppress: All"),
        # People's mail carries these too: no mark.
        ("X-Auto-Response-Suppress: DR, RN, NRN, OOF", ""),
        ("X-Mailer: Apple Mail (2.3774.200.91.1.1)", ""),
        ("List-Post: <mailto:dev@lists.example>", ""),
    ],
)
def test_machine_sent_marks_beyond_the_standard_ones(header, machine):
    """Issue 18, item 3: the header that gives machine-sent mail away, and what it is."""
    m = meta(f"From: a@b.example\r\nDate: Fri, 20 Nov 2026 10:00:00 +0100\r\n{header}\r\n\r\n")
    assert m.machine == machine
    assert m.list_id is False


def test_list_id_is_kept_apart_from_list_unsubscribe():
    newsletter = meta("From: a@b.example\r\nList-Unsubscribe: <mailto:u@b.example>\r\n\r\n")
    discussion = meta("From: a@b.example\r\nList-Id: Dev <dev.lists.example>\r\n\r\n")
    assert newsletter.list_headers and not newsletter.list_id
    assert discussion.list_headers and discussion.list_id
