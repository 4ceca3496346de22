"""Hostile and malformed mail in the real Dovecot: bounded time, digest still out, nothing leaks."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from inboxwatch.delivery.smtp import SmtpSender
from inboxwatch.store.sqlite import SqliteStore
from tests.conftest import OWNER, mail
from tests.integration.test_service import settings_for
from tests.polling import poll_once
from tests.proxy import RecordingProxy
from tests.smtp import smtp_server

pytestmark = pytest.mark.dovecot
H = timedelta(hours=1)
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
ANNA = "Anna <anna@client.example>"


def raw(headers: str, body: bytes = b"x\r\n") -> bytes:
    return headers.replace("\n", "\r\n").encode("utf-8", "surrogateescape") + b"\r\n" + body


def hostile_messages() -> list[bytes]:
    refs = " ".join(f"<r{n}@x.example>" for n in range(20_000))
    attachment = b"A" * (25 * 1024 * 1024)
    return [
        raw(
            "From: =?utf-8?q?Eve=0D=0ABcc:_evil@x.example?= <eve@x.example>\n"
            "Subject: =?utf-8?q?Hi=0D=0AX-Injected:_yes?=\nMessage-ID: <h1@x>\n"
        ),
        raw(
            "From: <script>@x.example\nSubject: =?utf-8?q?<script>alert(1)</script>?=\n"
            "Message-ID: <h2@x>\n"
        ),
        raw(
            "From: victim@ext.example)<me@mydomain.example>\nSubject: CVE shape\n"
            "Message-ID: <h3@x>\n"
        ),
        raw(f"From: {ANNA}\nSubject: no date\nMessage-ID: <h4@x>\n"),
        raw(
            f"From: {ANNA}\nSubject: year 2099\nDate: Thu, 01 Jan 2099 00:00:00 +0000\n"
            "Message-ID: <h5@x>\n"
        ),
        raw(
            f"From: {ANNA}\nSubject: year 1970\nDate: Thu, 01 Jan 1970 00:00:00 +0000\n"
            "Message-ID: <h6@x>\n"
        ),
        raw(
            f"From: {ANNA}\nSubject: impossible date\nDate: Feb 31 25:61:99 +9999\n"
            "Message-ID: <h7@x>\n"
        ),
        raw(f"From: {ANNA}\nSubject: no message id\n"),
        raw(f"From: {ANNA}\nSubject: duplicate one\nMessage-ID: <dup@x>\n"),
        raw(f"From: {ANNA}\nSubject: duplicate two\nMessage-ID: <dup@x>\n"),
        raw(f"From: {ANNA}\nSubject: loop a\nMessage-ID: <la@x>\nReferences: <lb@x>\n"),
        raw(f"From: {ANNA}\nSubject: loop b\nMessage-ID: <lb@x>\nReferences: <la@x>\n"),
        raw(f"From: {ANNA}\nSubject: self\nMessage-ID: <self@x>\nReferences: <self@x>\n"),
        raw(f"From: {ANNA}\nSubject: many refs\nMessage-ID: <refs@x>\nReferences: {refs}\n"),
        raw(f"From: {ANNA}\nSubject: {'S' * 100_000}\nMessage-ID: <long@x>\n"),
        raw(f"From: {ANNA}\nTo: {';' * 20_000}\nSubject: semicolons\nMessage-ID: <semi@x>\n"),
        raw(f"From: {ANNA}\nSubject: =?x-unknown?q?charset?=\nMessage-ID: <cs@x>\n"),
        raw(
            f"From: {ANNA}\nSubject: raw \udcff\udcfe 8-bit \x00 nul \x1b[31m\n"
            "Message-ID: <8bit@x>\n"
        ),
        raw(
            f"From: {ANNA}\nSubject: big attachment\nMessage-ID: <big@x>\n"
            "Content-Type: application/octet-stream\n",
            attachment,
        ),
    ]


def test_hostile_mail_is_survived_and_defused(ca, dovecot, sent_mailbox, tmp_path):
    sent_mailbox.add("Sent", mail(OWNER, "x@y.example"), T0 - 72 * H)
    for n, message in enumerate(hostile_messages()):
        sent_mailbox.add("INBOX", message, T0 - (30 + n) * H)
    with smtp_server(ca, "plain") as (handler, smtp_port), RecordingProxy(dovecot.port) as proxy:
        settings = settings_for(
            dovecot, sent_mailbox.user, tmp_path, port=proxy.port, smtp_port=smtp_port
        )
        store = SqliteStore(settings.state.path_resolved())
        started = time.monotonic()
        result = poll_once(settings, store, SmtpSender(settings.smtp), T0)
        took = time.monotonic() - started
        store.close()
    assert took < 30 and result.digest is not None
    [digest] = handler.received
    assert digest["X-Injected"] is None and digest["Bcc"] is None
    html = digest.get_body(("html",)).get_content()
    text = digest.get_body(("plain",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\x00" not in text and "\x1b" not in text
    subjects = {f.subject for f in result.report.overdue}
    # The CVE-2023-27043 shape is not the owner's reply: it waits like any inbound mail.
    assert "CVE shape" in subjects and "Hi X-Injected: yes" in subjects
    assert {"no date", "year 2099", "year 1970", "impossible date", "no message id"} <= subjects
    assert sum(s.startswith("duplicate") for s in subjects) == 1  # one Message-ID, one thread
    assert all(len(s) <= 998 for s in subjects)
    # Headers only: the 25 MB attachment was never downloaded.
    assert sum(len(m) for m in hostile_messages()) > 25_000_000
    assert proxy.server_bytes < 2_000_000
