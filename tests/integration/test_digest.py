"""The digest: rendering (golden files, hostile input, a real browser) and SMTP delivery."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from inboxwatch.cli.common import DEMO_AS_OF, demo_digest, demo_jobs
from inboxwatch.config import Digest, Smtp
from inboxwatch.core.model import Address, Finding, Report, Stats
from inboxwatch.core.scan import run_scan
from inboxwatch.delivery.digest import compose, render
from inboxwatch.delivery.smtp import SmtpSender
from inboxwatch.errors import AuthError, DeliveryError
from tests.browser import dump_dom
from tests.smtp import PASSWORD, USER, smtp_server

DATA = Path(__file__).parents[1] / "data"
NOW = DEMO_AS_OF


def demo_report() -> Report:
    return run_scan(demo_jobs(), NOW, NOW)


def hostile_report() -> Report:
    finding = Finding(
        account="work",
        thread_id="<t@x>",
        subject="<script>alert(1)</script> <img src=x "
        "onerror=\"document.title='pwned'\"> Bcc: evil@x.example",
        correspondent=Address("Eve\r\nBcc: evil@x.example <b>bold</b>", "eve@x.example"),
        waiting_since=NOW - timedelta(hours=30),
        message_ids=("<m@x>",),
        folder="INBOX",
        uids=(1,),
        messages_in_thread=1,
        last_reply=None,
        reason="Eve wrote; no reply from you in this thread",
    )
    from inboxwatch.core.model import AccountSummary

    return Report(
        NOW,
        NOW,
        timedelta(hours=24),
        [AccountSummary("work", ("INBOX",), ("Sent",), 1, 1, timedelta(hours=24))],
        [finding],
        [],
        Stats(),
    )


@pytest.mark.parametrize("part", ["txt", "html"])
def test_golden_digest(part):
    rendered = render(demo_report(), demo_digest(), NOW)
    body = rendered.text if part == "txt" else rendered.html
    golden = DATA / f"digest.{part}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(body, encoding="utf-8")
    assert body == golden.read_text(encoding="utf-8")


def test_digest_content_and_headers():
    message = compose(render(demo_report(), demo_digest(), NOW), demo_digest(), NOW)
    assert message["Subject"] == "4 conversations waiting > 24h"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    text, html = [p.get_content_type() for p in message.iter_parts()]
    assert (text, html) == ("text/plain", "text/html")
    body = message.get_body(("plain",)).get_content()
    for expected in (
        "Kim Lee <kim@museum.example> — waiting 7 days 22 hours",
        "Arrived Mon 16 Nov, 11:05",  # Europe/Berlin
        "Due before the next digest",
        "Can we move Thursday's call?",
        "Answered within 24h: 50%",
        "next digest Wed 25 Nov, 08:00",
    ):
        assert expected in body
    # The same period gives the same Message-ID; the next period another.
    later = compose(
        render(demo_report(), demo_digest(), NOW), demo_digest(), NOW + timedelta(hours=5)
    )
    tomorrow = NOW + timedelta(days=1)
    other = compose(render(demo_report(), demo_digest(), tomorrow), demo_digest(), tomorrow)
    assert message["Message-ID"] == later["Message-ID"] != other["Message-ID"]


def test_hostile_values_are_escaped_and_cannot_inject_headers():
    rendered = render(hostile_report(), Digest(to=["me@x.example"]), NOW)
    assert "<script>" not in rendered.html and "<img" not in rendered.html
    assert "&lt;script&gt;" in rendered.html and "&lt;b&gt;bold" in rendered.html
    assert "\r" not in rendered.text and "\nBcc" not in rendered.text
    message = compose(rendered, Digest(to=["me@x.example"]), NOW)
    assert message["Bcc"] is None and "Bcc:" not in message.as_string().split("\n\n", 1)[0]


def test_user_templates_override_the_shipped_ones(tmp_path):
    (tmp_path / "digest.txt.j2").write_text("{{ overdue_count }} waiting; {{ nosuchkey }}")
    config = Digest(to=["me@x.example"], template_dir=str(tmp_path))
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):  # StrictUndefined: a typo in a template is loud
        render(demo_report(), config, NOW)
    (tmp_path / "digest.txt.j2").write_text("{{ overdue_count }} waiting")
    rendered = render(demo_report(), config, NOW)
    assert rendered.text == "4 waiting" and "<table" in rendered.html


def test_html_renders_in_a_browser_runs_no_script_and_loads_nothing(tmp_path):
    page = tmp_path / "digest.html"
    page.write_text(render(hostile_report(), Digest(to=["me@x.example"]), NOW).html)
    netlog = tmp_path / "net.json"
    dom = dump_dom(page, tmp_path / "profile", f"--log-net-log={netlog}")
    assert "<title>1 conversation waiting &gt; 24h</title>" in dom  # onerror never ran
    assert "pwned" not in dom.split("<body")[0]
    assert "<script" not in dom and "<img" not in dom
    # Chromium itself asks Google for the time; anything else came from the page.
    urls = set(re.findall(r'"url":"([a-z]+://[^"/]*)', netlog.read_text()))
    page_urls = {u for u in urls if not re.search(r"\.(google|googleapis|gvt1)\.com$", u)}
    assert page_urls <= {"file://"}, page_urls
    assert not re.search(r"(src|href)=\"?(https?:)?//", page.read_text())


# --- SMTP delivery against aiosmtpd ------------------------------------------------------


def smtp_config(port: int, mode: str, ca_file: Path | None = None, auth: bool = True, **kw):
    security = {"nostarttls": "starttls"}.get(mode, mode)
    return Smtp(
        host="localhost" if mode in ("tls", "starttls") else "127.0.0.1",
        port=port,
        security=security,
        ca_file=str(ca_file or ""),
        retries=0,
        timeout="5s",
        username=USER if auth else "",
        password=PASSWORD if auth else None,
        **kw,
    )


def demo_message():
    return compose(render(demo_report(), demo_digest(), NOW), demo_digest(), NOW)


@pytest.mark.parametrize(
    ("mode", "auth"),
    [("plain", False), ("plain", True), ("starttls", True), ("tls", True), ("tls", False)],
)
def test_delivery_in_every_security_mode(ca, ca_file, mode, auth):
    with smtp_server(ca, mode, auth=auth) as (handler, port):
        SmtpSender(smtp_config(port, mode, ca_file, auth)).send(demo_message())
    [received] = handler.received
    assert received["Subject"] == "4 conversations waiting > 24h"
    assert received.get_body(("html",)).get_content().count("Waiting for your reply") == 1


def test_starttls_not_offered_is_refused(ca):
    with smtp_server(ca, "plain") as (handler, port), pytest.raises(DeliveryError) as err:
        SmtpSender(smtp_config(port, "nostarttls", auth=False)).send(demo_message())
    assert "does not offer STARTTLS" in str(err.value) and not handler.received


def test_untrusted_certificate_is_rejected(ca):
    with smtp_server(ca, "tls") as (_handler, port), pytest.raises(DeliveryError) as err:
        SmtpSender(smtp_config(port, "tls", auth=False)).send(demo_message())
    assert "not trusted" in str(err.value) and "smtp.ca_file" in str(err.value)


def test_451_is_retried_then_delivered_once(ca):
    slept: list[float] = []
    with smtp_server(ca, "plain", fail_first=2) as (handler, port):
        SmtpSender(
            smtp_config(port, "plain", auth=False), delays=(1, 2, 3), sleep=slept.append
        ).send(demo_message())
    assert slept == [1, 2] and handler.attempts == 3 and len(handler.received) == 1


def test_transient_failure_exhausts_retries(ca):
    with (
        smtp_server(ca, "plain", fail_first=9) as (handler, port),
        pytest.raises(DeliveryError) as err,
    ):
        SmtpSender(
            smtp_config(port, "plain", auth=False), delays=(0, 0), sleep=lambda s: None
        ).send(demo_message())
    assert "451" in str(err.value) and "after 3 attempts" in str(err.value)
    assert not handler.received


def test_microsoft_365_basic_auth_off_gets_a_hint(ca, ca_file):
    message = "535 5.7.30 Basic authentication is not supported for Client Submission"
    with (
        smtp_server(ca, "starttls", auth=True, auth_message=message) as (_handler, port),
        pytest.raises(AuthError) as err,
    ):
        SmtpSender(smtp_config(port, "starttls", ca_file)).send(demo_message())
    assert "basic authentication" in str(err.value).lower() and "tenant" in str(err.value)
    assert err.value.exit_code == 4


def test_nothing_listening_exits_6_via_the_cli(run, tmp_path, dovecot, sent_mailbox):
    from tests.conftest import write_config
    from tests.dovecot import free_port

    config = write_config(tmp_path, dovecot, sent_mailbox.user)
    config.write_text(
        config.read_text() + f'[digest]\nto = ["me@mydomain.example"]\n'
        f'send_when_empty = true\n[smtp]\nhost = "127.0.0.1"\n'
        f'port = {free_port()}\nsecurity = "plain"\nretries = 0\n'
    )
    result = run("digest", "--config", str(config))
    assert result.code == 6, result.err
    assert "digest not delivered" in result.err and "Traceback" not in result.err


# --- the digest and check commands end to end (Dovecot + aiosmtpd) ---------------------


def digest_config(tmp_path, dovecot, user, smtp_port: int, **extra) -> Path:
    from tests.conftest import write_config

    config = write_config(tmp_path, dovecot, user, **extra)
    config.write_text(
        config.read_text() + '[digest]\nto = ["Me <me@mydomain.example>"]\n'
        'sender = "inboxwatch <iw@mydomain.example>"\ntimezone = "Europe/Berlin"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "plain"\n'
        "retries = 0\n"
    )
    return config


def test_digest_command_scans_and_delivers(ca, run, tmp_path, dovecot, sent_mailbox):
    from tests.conftest import OWNER, mail

    now = datetime.now(UTC)
    sent_mailbox.add("Sent", mail(OWNER, "x@y.example"), now - timedelta(days=3))
    sent_mailbox.add(
        "INBOX", mail("Anna <anna@client.example>", subject="Quote?"), now - timedelta(hours=30)
    )
    with smtp_server(ca, "plain") as (handler, port):
        result = run(
            "digest", "--config", str(digest_config(tmp_path, dovecot, sent_mailbox.user, port))
        )
        assert result.code == 0, result.err
        [message] = handler.received
    assert message["Subject"] == "1 conversation waiting > 24h"
    assert message["To"] == "Me <me@mydomain.example>"
    assert "Quote?" in message.get_body(("plain",)).get_content()
    assert "digest sent to" in result.err


def test_no_digest_when_nobody_waits_unless_asked(ca, run, tmp_path, dovecot, sent_mailbox):
    with smtp_server(ca, "plain") as (handler, port):
        config = digest_config(tmp_path, dovecot, sent_mailbox.user, port)
        quiet = run("digest", "--config", str(config))
        assert quiet.code == 0 and "no digest sent" in quiet.err and not handler.received
        config.write_text(config.read_text().replace("[smtp]", "send_when_empty = true\n[smtp]"))
        assert run("digest", "--config", str(config)).code == 0
    assert handler.received[0]["Subject"] == "Nobody is waiting > 24h"


def test_dry_run_prints_the_demo_digest(run):
    result = run("digest", "--demo", "--dry-run")
    assert result.code == 0
    assert result.out.startswith("Subject: 4 conversations waiting > 24h")
    assert "Content-Type: multipart/alternative" in result.out
    assert "* Re: Exhibition poster — first drafts" in result.out  # readable, not =E2=80=94
    assert "quoted-printable" not in result.out
    assert run("digest", "--demo").code == 2


def test_check_logs_in_everywhere_and_masks_secrets(ca, run, tmp_path, dovecot, sent_mailbox):
    with smtp_server(ca, "plain") as (handler, port):
        config = digest_config(tmp_path, dovecot, sent_mailbox.user, port)
        result = run("check", "--config", str(config))
    assert result.code == 0, result.out + result.err
    assert f"ok account work: logged in to 127.0.0.1:{dovecot.port}" in result.out
    assert "sent folder Sent (SPECIAL-USE \\Sent)" in result.out
    assert f"ok smtp: connected to 127.0.0.1:{port}" in result.out
    assert dovecot.password not in result.out and '"password": "**********"' in result.out
    assert not handler.received


def test_check_reports_bad_password_and_unreachable_servers(ca, run, tmp_path, dovecot, mailbox):
    from tests.dovecot import free_port

    with smtp_server(ca, "plain") as (_handler, port):
        config = digest_config(tmp_path, dovecot, mailbox.user, port, password="wrong")
        result = run("check", "--config", str(config))
    assert result.code == 4
    assert "FAILED account work: login to 127.0.0.1 failed" in result.out
    assert "ok smtp" in result.out
    unreachable = digest_config(tmp_path, dovecot, mailbox.user, free_port(), port=free_port())
    result = run("check", "--config", str(unreachable))
    assert result.code == 5
    assert "FAILED account work: 127.0.0.1 refused the connection" in result.out
    assert "FAILED smtp: SMTP server 127.0.0.1 refused the connection" in result.out


def test_digest_still_goes_out_when_an_account_fails(ca, run, tmp_path, dovecot, mailbox):
    with smtp_server(ca, "plain") as (handler, port):
        config = digest_config(tmp_path, dovecot, mailbox.user, port, password="wrong")
        config.write_text(config.read_text().replace("[smtp]", "send_when_empty = true\n[smtp]"))
        result = run("digest", "--config", str(config))
    assert result.code == 4
    [message] = handler.received
    body = message.get_body(("plain",)).get_content()
    assert "Check these" in body and "work: login to 127.0.0.1 failed" in body


def test_escalated_and_high_priority_come_first_marked_with_their_history():
    """Issue 19, items 4 and 6: the digest's order and marks, a thread's count of earlier
    digests, its business-hours wait, and a rule's week against the week before."""
    from inboxwatch.core.model import AccountSummary, Conversation, ReplyStandard

    def found(subject: str, hours: float, **standing) -> Finding:
        return (
            hostile_report()
            .overdue[0]
            ._replace(
                subject=subject,
                thread_id=f"<{subject}>",
                correspondent=Address("", "a@x.example"),
                waiting_since=NOW - timedelta(hours=hours),
                **standing,
            )
        )

    oldest = found("Oldest", 90)
    urgent = found("Urgent", 30, priority="high", rule="rules[1]")
    stale = found("Stale", 60, escalated=True, digests_seen=3)
    once = found("Once", 50, remind="once", digests_seen=1)
    office = found("Office", 40, business_waiting=timedelta(hours=13))
    since = NOW - timedelta(days=2)
    fast = Conversation(
        since, since + timedelta(hours=4), since + timedelta(hours=1), True, "rules[1]"
    )
    reply = ReplyStandard(1, 1, 1, 1, [3600.0], [fast])
    summary = AccountSummary("work", ("INBOX",), ("Sent",), 5, 5, timedelta(hours=24), reply)
    stats = Stats(5, 1, 5, 0, {}, reply)
    report = Report(
        NOW, NOW, timedelta(hours=24), [summary], [oldest, urgent, stale, once, office], [], stats
    )
    text = render(report, demo_digest(), NOW).text
    order = [
        text.index(s)
        for s in ("[ESCALATED] Stale", "[HIGH PRIORITY] Urgent", "* Oldest", "* Office")
    ]
    assert order == sorted(order)
    assert "* Once" not in text and "1 listed once already (remind = once)" in text
    assert "listed in 3 earlier digests" in text and "(13 business hours)" in text
    assert "rules[1]: 100% this week" in text and "Answered within their windows" in text
