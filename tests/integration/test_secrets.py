"""Secrets never leak: every fault at -vv, with both passwords set; output, JSON, state checked."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.conftest import NOW, OWNER, mail
from tests.proxy import RecordingProxy
from tests.smtp import PASSWORD as SMTP_PASSWORD
from tests.smtp import USER as SMTP_USER
from tests.smtp import smtp_server

pytestmark = pytest.mark.dovecot


def forms(secret: str, user: str) -> list[str]:
    """The secret as it could leak: plain, base64, and as an AUTH PLAIN string."""
    plain = f"\0{user}\0{secret}".encode()
    return [secret, base64.b64encode(secret.encode()).decode(), base64.b64encode(plain).decode()]


def config(
    tmp_path: Path,
    imap_port: int,
    user: str,
    password: str,
    smtp_port: int,
    smtp_auth: str = SMTP_PASSWORD,
) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[[accounts]]\nname = "work"\nhost = "127.0.0.1"\nport = {imap_port}\n'
        f'security = "plain"\nusername = "{user}"\npassword = "{password}"\n'
        f'addresses = ["{OWNER}"]\ntimeout = "3s"\n'
        f'[digest]\nto = ["{OWNER}"]\nsend_when_empty = true\nschedule = "0 8 * * *"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "plain"\nretries = 0\n'
        f'username = "{SMTP_USER}"\npassword = "{smtp_auth}"\n'
        f'[state]\npath = "{tmp_path / "state.db"}"\n'
    )
    return path


def test_no_secret_in_any_output_log_report_or_state(ca, dovecot, sent_mailbox, run, tmp_path):
    sent_mailbox.add("Sent", mail(OWNER, "x@y.example"), NOW)
    user, password = sent_mailbox.user, dovecot.password
    outputs: list[str] = []
    with smtp_server(ca, "plain", auth=True) as (_handler, smtp_port):
        runs = [
            ("scan", "-vv", "--format", "json"),
            ("digest", "-vv"),
            ("check", "-vv"),
            ("run", "--once", "-vv"),
        ]
        for args in runs:  # everything working
            result = run(
                *args, "--config", str(config(tmp_path, dovecot.port, user, password, smtp_port))
            )
            outputs += [result.out, result.err]
        wrong = config(tmp_path, dovecot.port, user, password + "x", smtp_port, "wrong")
        for args in runs:  # both logins failing
            result = run(*args, "--config", str(wrong))
            outputs += [result.out, result.err]
        with RecordingProxy(dovecot.port, cut_on=b"UID FETCH") as proxy:
            cut = config(tmp_path, proxy.port, user, password, smtp_port)
            for args in runs:  # the connection cut mid-fetch
                result = run(*args, "--config", str(cut))
                outputs += [result.out, result.err]
    state = (tmp_path / "state.db").read_bytes().decode("latin-1")
    everything = "\n".join([*outputs, state])
    assert "LOGIN" in everything or "login" in everything  # the logs did talk about logging in
    for secret in [*forms(password, user), *forms(SMTP_PASSWORD, SMTP_USER)]:
        assert secret not in everything
    assert "**********" in everything  # check's masked config


def test_names_and_passwords_beyond_ascii_sign_in_or_fail_as_logins_and_never_show(
    ca, dovecot, sent_mailbox, run, tmp_path
):
    """imaplib and smtplib write LOGIN and AUTH as ASCII; their UnicodeEncodeError quoted
    the password and was an internal error (exit 70). Such names and passwords now go by
    AUTHENTICATE PLAIN / AUTH PLAIN in UTF-8 (RFC 4616). One failing run each: Dovecot
    delays logins from an address after a failed one (its auth penalty, 2 s and up), past
    this module's 3 s timeout, so the timeout here is 20 s."""
    imap_secret, smtp_secret = "pässwort-imap", "pässwort-smtp"
    user, password = sent_mailbox.user, dovecot.password
    outputs: list[str] = []

    def attempt(*args: str, imap: str, smtp: str, name: str = user) -> int:
        path = config(tmp_path, dovecot.port, name, imap, smtp_port, smtp)
        path.write_text(path.read_text().replace('timeout = "3s"', 'timeout = "20s"'))
        result = run(*args, "--config", str(path))
        outputs.extend([result.out, result.err])
        return result.code

    with smtp_server(ca, "plain", auth=True) as (_handler, smtp_port):
        assert attempt("scan", "-vv", imap=imap_secret, smtp=SMTP_PASSWORD) == 4
        assert "login to 127.0.0.1 failed: [AUTHENTICATIONFAILED]" in outputs[-1]
        # A name beyond ASCII signs in (tests/dovecot.py allows any name): in, its new and
        # empty mailbox has no sent folder, which is the contract's exit 3.
        assert attempt("scan", imap=password, smtp=SMTP_PASSWORD, name="jörg") == 3
        assert "no sent folder found" in outputs[-1], outputs[-1]
        assert attempt("digest", "-vv", imap=password, smtp=smtp_secret) == 4
        assert "SMTP login to 127.0.0.1 failed (535" in outputs[-1], outputs[-1]
    with smtp_server(ca, "plain", auth=True, login=(SMTP_USER, smtp_secret)) as (
        handler,
        smtp_port,
    ):
        assert attempt("digest", imap=password, smtp=smtp_secret) in (0, 1)
        assert len(handler.received) == 1  # signed in with the UTF-8 password, and sent
    everything = "\n".join(outputs)
    for secret in [*forms(imap_secret, user), *forms(smtp_secret, SMTP_USER)]:
        assert secret not in everything
