"""Read-only proof, TLS and STARTTLS against the real Dovecot (trustme certificates)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import NOW, OWNER, mail, write_config
from tests.dovecot import Dovecot
from tests.proxy import RecordingProxy

pytestmark = pytest.mark.dovecot
H = timedelta(hours=1)
WRITE_COMMANDS = {
    "STORE",
    "UID STORE",
    "COPY",
    "UID COPY",
    "MOVE",
    "UID MOVE",
    "EXPUNGE",
    "UID EXPUNGE",
    "APPEND",
    "CREATE",
    "DELETE",
    "RENAME",
    "SELECT",
    "SUBSCRIBE",
}


def test_scan_leaves_the_mailbox_untouched_and_sends_no_write_command(
    dovecot, sent_mailbox, run, tmp_path
):
    box = sent_mailbox
    box.add("INBOX", mail("Anna <anna@client.example>", mid="<r1@c.example>"), NOW - 50 * H)
    box.add("INBOX", mail("Bo <bo@x.example>"), NOW - 50 * H, flags=("\\Flagged",))
    box.add("Sent", mail(OWNER, "anna@client.example", in_reply_to="<r1@c.example>"), NOW - 9 * H)
    before = box.snapshot()
    with RecordingProxy(dovecot.port) as proxy:
        config = write_config(tmp_path, dovecot, box.user, port=proxy.port)
        result = run(
            "scan", "--config", str(config), "--format", "json", "--as-of", NOW.isoformat()
        )
        commands = proxy.commands()
    assert result.code == 1, result.err
    assert box.snapshot() == before  # no \Seen added, nothing moved or expunged
    assert "EXAMINE" in commands and "UID FETCH" in commands
    assert not WRITE_COMMANDS & set(commands), commands
    fetches = [line for line in proxy.client_bytes.decode().splitlines() if " FETCH " in line]
    assert fetches and any("BODY.PEEK[HEADER.FIELDS" in line for line in fetches)
    # Bodies only ever with PEEK (RFC 9051 6.4.5: no \\Seen); BODYSTRUCTURE and PREVIEW
    # (RFC 8970 3) set no flag either.
    assert all(re.search(r"(?<!PEEK)\[", line.split("UID FETCH", 1)[1]) is None for line in fetches)
    assert all("RFC822" not in line for line in fetches)


def _tls_config(tmp_path, dovecot, user, **extra):
    return write_config(tmp_path, dovecot, user, host="localhost", **extra)


def _read_whole(result) -> None:
    """Over TLS the streamed header FETCH reads every record (the SSL socket's file)."""
    assert result.code == 1, result.err
    report = result.json()
    assert report["accounts"][0]["messages"] == 1 + len(QUESTIONS)
    assert sorted(f["subject"] for f in report["overdue"]) == sorted(QUESTIONS)


QUESTIONS = [f"Question {n}" for n in range(5)]


def _questions(box) -> None:
    for n, subject in enumerate(QUESTIONS):
        box.add("INBOX", mail("Anna <anna@client.example>", subject=subject), NOW - (30 + n) * H)


def test_implicit_tls_with_private_ca(dovecot, sent_mailbox, run, tmp_path, ca_file):
    sent_mailbox.add("Sent", mail(OWNER, "x@y.example"), NOW - 5 * H)
    _questions(sent_mailbox)
    config = _tls_config(
        tmp_path,
        dovecot,
        sent_mailbox.user,
        security="tls",
        port=dovecot.tls_port,
        ca_file=str(ca_file),
    )
    result = run("scan", "--format", "json", "--as-of", NOW.isoformat(), "--config", str(config))
    _read_whole(result)


def test_starttls_with_private_ca(dovecot, sent_mailbox, run, tmp_path, ca_file):
    sent_mailbox.add("Sent", mail(OWNER, "x@y.example"), NOW - 5 * H)
    _questions(sent_mailbox)
    with RecordingProxy(dovecot.port) as proxy:
        config = _tls_config(
            tmp_path,
            dovecot,
            sent_mailbox.user,
            security="starttls",
            port=proxy.port,
            ca_file=str(ca_file),
        )
        result = run(
            "scan", "--format", "json", "--as-of", NOW.isoformat(), "--config", str(config)
        )
        sent_in_clear = proxy.client_bytes.decode("latin-1")
    _read_whole(result)
    assert "STARTTLS" in sent_in_clear
    assert dovecot.password not in sent_in_clear  # LOGIN only after the handshake


def test_untrusted_certificate_is_refused_with_exit_5(dovecot, mailbox, run, tmp_path):
    config = _tls_config(tmp_path, dovecot, mailbox.user, security="tls", port=dovecot.tls_port)
    result = run("scan", "--config", str(config))
    assert result.code == 5
    assert "certificate of localhost not trusted" in result.err
    assert "ca_file" in result.err and "Traceback" not in result.err


@pytest.fixture(scope="module")
def dovecot_without_tls(tmp_path_factory):
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="inboxwatch-dovecot-plain-"))
    server = Dovecot(base)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_starttls_refuses_to_log_in_when_not_offered(dovecot_without_tls, run, tmp_path):
    with RecordingProxy(dovecot_without_tls.port) as proxy:
        config = write_config(
            tmp_path, dovecot_without_tls, "u1", security="starttls", port=proxy.port
        )
        result = run("scan", "--config", str(config))
        sent = proxy.client_bytes.decode("latin-1")
    assert result.code == 5
    assert "does not offer STARTTLS" in result.err
    assert "LOGIN" not in sent.upper() and dovecot_without_tls.password not in sent


def test_plain_is_refused_off_loopback_without_allow_insecure(run, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[[accounts]]\nname = "w"\nhost = "imap.example.com"\nsecurity = "plain"\n'
        'username = "me@example.com"\npassword = "x"\n'
    )
    result = run("scan", "--config", str(config))
    assert result.code == 3
    assert "plain IMAP sends the password in clear" in result.err


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("[AUTHENTICATIONFAILED] Authentication failed.", 4),
        ("[ALERT] Application-specific password required", 4),
        ("[UNAVAILABLE] Temporary authentication failure", 5),
        ("[LIMIT] Too many connections", 5),
        ("[INUSE] Mailbox in use", 5),
    ],
)
def test_login_failures_are_told_apart(text, code):
    from inboxwatch.net import login_error

    error = login_error("imap.example.com", text)
    assert error.exit_code == code and text in str(error)
