"""OAuth 2.0 sign-in end to end: a real Dovecot taking XOAUTH2 through its oauth2 passdb,
aiosmtpd taking AUTH XOAUTH2, and a loopback provider (tests/oauth_provider.py) that
issues, renews and checks the tokens, playing a `custom` provider and, over HTTPS for
msal, Microsoft's identity platform."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from inboxwatch.auth.refresh import TokenSource, account_tokens, smtp_tokens, tokens_dir
from inboxwatch.auth.signin import sign_in
from inboxwatch.auth.tokens import TokenFile
from inboxwatch.config import OAuth2, Settings, Smtp
from inboxwatch.delivery.smtp import SmtpSender
from inboxwatch.errors import DeliveryError, SignInNeeded
from inboxwatch.service.health import health
from inboxwatch.store.sqlite import SqliteStore
from tests.conftest import OWNER, Mailbox, mail
from tests.dovecot import Dovecot, free_port, running
from tests.integration.test_service import Recorder
from tests.oauth_provider import Provider
from tests.polling import poll_once
from tests.smtp import Handler

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def provider(ca: trustme.CA) -> Iterator[Provider]:
    with Provider(ca) as running:
        yield running


@pytest.fixture(scope="module")
def oauth_dovecot(provider: Provider) -> Iterator[Dovecot]:
    base = Path(tempfile.mkdtemp(prefix="inboxwatch-dovecot-oauth-"))
    with running(base, introspection_url=f"{provider.url}/introspect") as server:
        yield server


_users = iter(range(10_000))


@pytest.fixture
def idp(provider: Provider, oauth_dovecot: Dovecot) -> Iterator[Provider]:
    """The provider, reset, signing in a fresh mailbox user with two threads overdue."""
    state = provider.state
    state.revoke_all()
    state.calls.clear()
    state.device_script.clear()
    state.rotate, state.delay, state.lifetime, state.device_expires_in = True, 0.0, 3600, 600
    state.refuse_logins = False
    state.user = f"oauth{next(_users)}"
    box = Mailbox(oauth_dovecot, state.user)
    box.create("Sent")
    box.add("Sent", mail(OWNER, "x@y.example", "Note"), _hours_ago(72))
    for n in range(2):
        box.add("INBOX", mail("Anna <anna@client.example>", subject=f"Q{n}"), _hours_ago(40))
    yield provider
    box.close()


def _hours_ago(hours: int) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


def _toml(value: Any) -> str:
    return json.dumps(value)


def oauth_account(idp: Provider, dovecot: Dovecot) -> dict[str, Any]:
    """The account "work" on the OAuth Dovecot, signing in with the provider's `custom`."""
    return {
        "name": "work",
        "host": "127.0.0.1",
        "port": dovecot.port,
        "security": "plain",
        "username": idp.state.user,
        "addresses": [OWNER],
        "sent_folders": ["Sent"],
        "auth": "oauth2",
        "oauth2": idp.oauth2(),
    }


def write_oauth_config(
    tmp_path: Path, dovecot: Dovecot, user: str, oauth2: dict[str, Any], extra: str = ""
) -> Path:
    account = {
        "name": "work",
        "host": "127.0.0.1",
        "port": dovecot.port,
        "security": "plain",
        "username": user,
        "addresses": [OWNER],
        "sent_folders": ["Sent"],
        "auth": "oauth2",
    }
    body = "[[accounts]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in account.items())
    body += "[accounts.oauth2]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in oauth2.items())
    body += extra + f'\n[state]\npath = "{tmp_path / "state" / "state.db"}"\n'
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return path


def token_file(tmp_path: Path, name: str = "work") -> Path:
    return tmp_path / "state" / "tokens" / f"account-{name}.json"


def test_device_sign_in_then_every_scan_logs_in_with_xoauth2(run, tmp_path, idp, oauth_dovecot):
    idp.state.device_script = ["authorization_pending"]
    config = write_oauth_config(tmp_path, oauth_dovecot, idp.state.user, idp.oauth2())
    signed = run("auth", "work", "--config", str(config))
    assert signed.code == 0, signed.err
    assert "ABCD-EFGH" in signed.out and f"signed in as {idp.state.user}" in signed.out
    path = token_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert idp.state.calls.count("urn:ietf:params:oauth:grant-type:device_code") == 2

    scanned = run("scan", "--config", str(config), "--format", "json")
    assert scanned.code == 1, scanned.err
    assert len(scanned.json()["overdue"]) == 2
    assert "introspect" in idp.state.calls  # Dovecot asked the provider: a real XOAUTH2 login
    assert "refresh_token" not in idp.state.calls  # the token was fresh

    status = run("auth", "work", "--status", "--config", str(config))
    assert status.code == 0 and "access token: valid until" in status.out
    revoked = run("auth", "work", "--revoke", "--config", str(config))
    assert revoked.code == 0 and not path.exists()
    again = run("scan", "--config", str(config))
    assert again.code == 8 and "run `inboxwatch auth work`" in again.err


def expiring(path: Path, seconds: float = 60) -> dict[str, Any]:
    """The token file as if its access token had `seconds` left: inside auth.refresh.EARLY."""
    tokens = json.loads(path.read_text())
    tokens["expires_at"] = time.time() + seconds
    tokens["refreshed_at"] = tokens["expires_at"] - 3600  # issued an hour's token long ago
    path.write_text(json.dumps(tokens))
    return dict(tokens)


def test_a_token_about_to_expire_is_renewed_before_login(run, tmp_path, idp, oauth_dovecot):
    config = write_oauth_config(tmp_path, oauth_dovecot, idp.state.user, idp.oauth2())
    assert run("auth", "work", "--config", str(config)).code == 0
    before = expiring(token_file(tmp_path))
    scanned = run("scan", "--config", str(config))
    after = json.loads(token_file(tmp_path).read_text())
    assert scanned.code == 1, scanned.err
    assert idp.state.calls.count("refresh_token") == 1
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]  # rotated, and the new one kept
    assert after["refresh_token"] in idp.state.refresh


def test_a_rejected_token_is_renewed_once_and_the_login_retried(run, tmp_path, idp, oauth_dovecot):
    config = write_oauth_config(tmp_path, oauth_dovecot, idp.state.user, idp.oauth2())
    assert run("auth", "work", "--config", str(config)).code == 0
    idp.state.access.clear()  # the server no longer takes the access token; refresh is good
    scanned = run("scan", "--config", str(config))
    assert scanned.code == 1, scanned.err
    assert idp.state.calls.count("refresh_token") == 1


def test_a_provider_keeping_its_refresh_token_leaves_ours_in_place(
    run, tmp_path, idp, oauth_dovecot
):
    idp.state.rotate = False  # Google: the answer to a renewal holds no refresh token
    config = write_oauth_config(tmp_path, oauth_dovecot, idp.state.user, idp.oauth2())
    assert run("auth", "work", "--config", str(config)).code == 0
    expiring(token_file(tmp_path))
    kept = json.loads(token_file(tmp_path).read_text())["refresh_token"]
    assert run("scan", "--config", str(config)).code == 1
    assert json.loads(token_file(tmp_path).read_text())["refresh_token"] == kept


def test_a_revoked_sign_in_stops_that_account_once_and_the_others_go_on(
    run, tmp_path, idp, oauth_dovecot
):
    config = write_oauth_config(tmp_path, oauth_dovecot, idp.state.user, idp.oauth2())
    other = Mailbox(oauth_dovecot, f"{idp.state.user}-home")
    other.create("Sent")
    text = config.read_text().replace(
        "[state]",
        "[[accounts]]\n"
        + "".join(
            f"{k} = {_toml(v)}\n"
            for k, v in {
                "name": "home",
                "host": "127.0.0.1",
                "port": oauth_dovecot.port,
                "security": "plain",
                "username": other.user,
                "password": oauth_dovecot.password,
                "addresses": [OWNER],
                "sent_folders": ["Sent"],
            }.items()
        )
        + "\n[state]",
    )
    config.write_text(text)
    config.chmod(0o600)
    assert run("auth", "work", "--config", str(config)).code == 0
    idp.state.revoke_all()  # the user revoked the app, or changed the password
    first = run("scan", "--config", str(config), "--format", "json")
    assert first.code == 8, first.err
    errors = first.json()["errors"]
    assert [(e["account"], e["kind"]) for e in errors] == [("work", "signin")]
    assert "run `inboxwatch auth work` again" in errors[0]["message"]
    assert [a["name"] for a in first.json()["accounts"]] == ["home"]
    asked = idp.state.calls.count("refresh_token")
    assert asked == 1
    second = run("scan", "--config", str(config))
    assert second.code == 8 and "run `inboxwatch auth work` again" in second.err
    assert idp.state.calls.count("refresh_token") == asked  # no retry storm
    check = run("check", "--config", str(config))
    assert check.code == 8 and "FAILED account work" in check.out
    assert run("auth", "work", "--config", str(config)).code == 0  # signing in again heals it
    assert run("scan", "--config", str(config)).code == 1
    other.close()


def test_two_processes_renewing_at_once_keep_one_valid_token_file(tmp_path, idp):
    oauth2 = OAuth2(**idp.oauth2())
    path = tmp_path / "tokens" / "account-work.json"
    source = TokenSource("work", oauth2, TokenFile(path), "accounts[work]")
    sign_in(source, "alice", lambda _: None, lambda: "")
    expiring(path)
    idp.state.delay = 0.5  # both are inside the token endpoint's time at once
    script = (
        "import sys; from inboxwatch.auth.refresh import TokenSource;"
        "from inboxwatch.auth.tokens import TokenFile; from inboxwatch.config import OAuth2;"
        "from pathlib import Path; import json;"
        "o = OAuth2(**json.loads(sys.argv[1]));"
        "print(TokenSource('work', o, TokenFile(Path(sys.argv[2])), 'w').access_token())"
    )
    args = [sys.executable, "-c", script, json.dumps(idp.oauth2()), str(path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, env=env) for _ in range(2)]
    tokens = [p.communicate(timeout=60)[0].decode().strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert tokens[0] == tokens[1] and idp.state.valid(tokens[0])
    assert idp.state.calls.count("refresh_token") == 1
    stored = json.loads(path.read_text())
    assert stored["refresh_token"] in idp.state.refresh


def test_no_token_appears_in_any_output_even_at_vv(run, tmp_path, idp, oauth_dovecot):
    issued: list[str] = []
    real_issue = idp.state.issue

    def issue(lifetime: int | None = None) -> dict[str, Any]:
        answer = real_issue(lifetime)
        issued.extend([answer["access_token"], answer["refresh_token"]])
        return answer

    idp.state.issue = issue  # type: ignore[method-assign]
    try:
        config = write_oauth_config(tmp_path, oauth_dovecot, idp.state.user, idp.oauth2())
        outputs = [run("-vv", "auth", "work", "--config", str(config))]
        for _ in range(2):  # each scan renews: the renewal's answers are in play too
            expiring(token_file(tmp_path))
            outputs.append(run("-vv", "scan", "--config", str(config)))
        outputs.append(run("-vv", "auth", "work", "--status", "--config", str(config)))
        outputs.append(run("-vv", "check", "--config", str(config)))
        idp.state.revoke_all()
        outputs.append(run("-vv", "scan", "--config", str(config)))  # the failure path too
    finally:
        del idp.state.issue
    assert len(issued) >= 6 and outputs[-1].code == 8
    text = "".join(o.out + o.err for o in outputs)
    assert "DEBUG" in text  # -vv did log the protocol
    assert not [token for token in issued if token in text]


def test_msal_device_flow_waits_out_pending_and_slow_down(
    run, tmp_path, idp, oauth_dovecot, ca_file, monkeypatch
):
    """msal through its injectable HTTP client (auth.microsoft._Http) against the provider
    playing login.microsoftonline.com over HTTPS; then the renewal goes through msal too."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    idp.state.device_script = ["authorization_pending", "slow_down"]
    oauth2 = {
        "provider": "microsoft",
        "client_id": "inboxwatch-test",
        "tenant": "organizations",
        "authority": idp.tls_url,
    }
    config = write_oauth_config(tmp_path, oauth_dovecot, idp.state.user, oauth2)
    signed = run("auth", "work", "--config", str(config))
    assert signed.code == 0, signed.err
    assert "ABCD-EFGH" in signed.out
    assert idp.state.calls.count("urn:ietf:params:oauth:grant-type:device_code") == 3
    token = json.loads(token_file(tmp_path).read_text())
    token["expires_at"] = 0  # expired: the scan renews through msal
    token_file(tmp_path).write_text(json.dumps(token))
    scanned = run("-vv", "scan", "--config", str(config))
    assert scanned.code == 1, scanned.err
    assert idp.state.calls.count("refresh_token") == 1
    renewed = json.loads(token_file(tmp_path).read_text())
    secrets = {t[k] for t in (token, renewed) for k in ("access_token", "refresh_token")}
    said = signed.out + signed.err + scanned.out + scanned.err
    assert "msal" in said and not [s for s in secrets if s in said]  # msal logged, no token


def test_a_device_code_that_expires_ends_the_sign_in_clearly(run, tmp_path, idp, oauth_dovecot):
    idp.state.device_expires_in = 2
    idp.state.device_script = ["authorization_pending"] * 10
    config = write_oauth_config(tmp_path, oauth_dovecot, idp.state.user, idp.oauth2())
    result = run("auth", "work", "--config", str(config))
    assert result.code == 4 and "expired" in result.err
    assert result.err.count("\n") == 1 and not token_file(tmp_path).exists()


def _loopback_source(idp: Provider, tmp_path: Path) -> TokenSource:
    oauth2 = OAuth2(
        provider="custom",
        client_id="inboxwatch-test",
        authorization_endpoint=f"{idp.url}/authorize",
        token_endpoint=f"{idp.url}/token",
    )
    path = tmp_path / "tokens" / "account-work.json"
    return TokenSource("work", oauth2, TokenFile(path), "accounts[work]")


def _address(said: list[str]) -> str:
    return next(w for line in said for w in line.split() if "/authorize?" in w)


def test_loopback_sign_in_with_pkce_catches_the_browsers_redirect(tmp_path, idp):
    said: list[str] = []

    def say(text: str) -> None:  # the user opens the address: the browser follows redirects
        said.append(text)
        threading.Thread(target=urllib.request.urlopen, args=(_address(said),)).start()

    tokens = sign_in(_loopback_source(idp, tmp_path), "alice", say, lambda: "")
    assert idp.state.valid(tokens.access_token) and tokens.refresh_token in idp.state.refresh
    assert "authorize" in idp.state.calls and "authorization_code" in idp.state.calls


def test_loopback_sign_in_takes_the_address_pasted_from_another_machine(tmp_path, idp):
    said: list[str] = []
    ready = threading.Event()

    def pasted() -> str:
        """The browser ran elsewhere: its last address, copied from the address bar."""
        ready.wait(10)
        url = urllib.parse.urlsplit(_address(said))
        conn = http.client.HTTPConnection(url.netloc)
        conn.request("GET", f"{url.path}?{url.query}")
        return conn.getresponse().getheader("Location") or ""

    def say(text: str) -> None:
        said.append(text)
        ready.set()

    tokens = sign_in(_loopback_source(idp, tmp_path), "alice", say, pasted)
    assert idp.state.valid(tokens.access_token)


@dataclass
class XOAuth2Handler(Handler):
    """aiosmtpd taking AUTH XOAUTH2 (a handler method named auth_<MECHANISM>), each token
    checked with the provider; a refused one gets the 334 JSON error, as Gmail sends."""

    idp: Any = None
    logins: list[bool] = field(default_factory=list)
    users: list[str] = field(default_factory=list)

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        blob = args[1] if len(args) > 1 else await server.challenge_auth("")
        text = base64.b64decode(blob).decode() if isinstance(blob, str) else blob.decode()
        fields = dict(part.split("=", 1) for part in text.split("\x01") if "=" in part)
        ok = self.idp.valid(fields.get("auth", "").removeprefix("Bearer "))
        self.logins.append(ok)
        self.users.append(fields.get("user", ""))
        if not ok:
            await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer"}))
        return AuthResult(success=ok, handled=False)


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = OWNER, OWNER, "digest"
    message.set_content("hello")
    return message


@contextlib.contextmanager
def xoauth2_smtp(idp: Provider, tmp_path: Path, user: str) -> Iterator[tuple[Any, SmtpSender]]:
    """An aiosmtpd taking XOAUTH2 tokens of the tests' provider, and a signed-in sender."""
    handler = XOAuth2Handler(idp=idp.state)
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, auth_required=True, auth_require_tls=False
    )
    controller.start()
    try:
        oauth2 = OAuth2(**idp.oauth2())
        smtp = Smtp(
            host="127.0.0.1", port=port, security="plain", username=user,
            auth="oauth2", oauth2=oauth2, retries=0,
        )  # fmt: skip
        tokens = TokenSource("smtp", oauth2, TokenFile(tmp_path / "smtp.json"), "smtp")
        sign_in(tokens, user, lambda _: None, lambda: "")
        yield handler, SmtpSender(smtp, tokens=tokens)
    finally:
        controller.stop()


def test_smtp_sends_with_xoauth2_and_renews_a_refused_token_once(tmp_path, idp):
    with xoauth2_smtp(idp, tmp_path, OWNER) as (handler, sender):
        sender.send(_message())
        idp.state.access.clear()  # the server refuses the access token; the refresh is good
        sender.send(_message())
        assert handler.logins == [True, False, True] and len(handler.received) == 2
        assert idp.state.calls.count("refresh_token") == 1
        idp.state.revoke_all()
        with pytest.raises(SignInNeeded, match="run `inboxwatch auth smtp` again"):
            sender.send(_message())


def test_an_xoauth2_user_name_beyond_ascii_signs_in_in_utf8(tmp_path, idp, caplog):
    """smtplib writes AUTH as ASCII: for such a name its UnicodeEncodeError held the whole
    XOAUTH2 string, token and all. The string goes in UTF-8 now, as imaplib sends IMAP's."""
    caplog.set_level(logging.DEBUG)
    with xoauth2_smtp(idp, tmp_path, "jörg@example.com") as (handler, sender):
        sender.send(_message())
        assert handler.users == ["jörg@example.com"] and handler.logins == [True]
        assert len(handler.received) == 1
        token = sender.tokens.access_token() if sender.tokens else "?"
    assert token not in caplog.text


def test_a_host_name_beyond_ascii_is_one_line_that_blames_neither_login(tmp_path, idp, monkeypatch):
    """What smtplib still writes as ASCII is EHLO's host name (socket.getfqdn): its
    failure names that, not smtp.username, and holds no secret."""
    with xoauth2_smtp(idp, tmp_path, OWNER) as (handler, sender):
        monkeypatch.setattr(socket, "getfqdn", lambda *_: "hôte.example")
        with pytest.raises(DeliveryError, match="host name, which EHLO sends") as caught:
            sender.send(_message())
        assert handler.logins == [] and "username" not in str(caught.value)


def test_smtp_shares_the_sign_in_of_the_account_with_its_username(tmp_path, idp):
    account = {
        "name": "work",
        "host": "imap.example",
        "username": OWNER,
        "auth": "oauth2",
        "oauth2": idp.oauth2(),
    }
    settings = Settings(
        accounts=[account],
        smtp={"host": "smtp.example", "username": OWNER.upper(), "auth": "oauth2"},
        state={"path": str(tmp_path / "state.db")},
    )
    shared = smtp_tokens(settings)
    assert shared is not None and shared.name == "work"
    assert shared.file.path == tmp_path / "tokens" / "account-work.json"
    with pytest.raises(ValueError, match="same username"):
        Settings(
            accounts=[account],
            smtp={"host": "smtp.example", "username": "other@x.example", "auth": "oauth2"},
        )


def test_the_service_names_an_ended_sign_in_atop_the_digest_and_in_health(
    tmp_path, idp, oauth_dovecot
):
    account = oauth_account(idp, oauth_dovecot)
    settings = Settings(
        accounts=[account],
        digest={"to": [OWNER], "schedule": "0 * * * *", "timezone": "UTC"},
        smtp={"host": "127.0.0.1", "security": "plain"},
        state={"path": str(tmp_path / "state.db")},
    )
    source = account_tokens(settings.accounts[0], tokens_dir(settings))
    sign_in(source, idp.state.user, lambda _: None, lambda: "")
    idp.state.revoke_all()
    store = SqliteStore(settings.state.path_resolved())
    now = datetime.now(UTC)
    recorder = Recorder()
    first = poll_once(settings, store, recorder, now)
    assert [e.kind for e in first.report.errors] == ["signin"]
    text = recorder.sent[0].get_body(("plain",)).get_content()
    notice = text.split("\n\n")[1]  # right under the title
    assert notice.startswith("SIGN-IN NEEDED") and "run `inboxwatch auth work` again" in notice
    ok, reason = health(settings, now)
    assert not ok and reason.startswith("work: sign-in needed") and "no successful" not in reason
    sign_in(source, idp.state.user, lambda _: None, lambda: "")  # the user signs in again
    later = poll_once(settings, store, Recorder(), now + timedelta(minutes=15))
    assert not later.report.errors and len(later.report.overdue) == 2  # no backoff after it
    assert health(settings, now + timedelta(minutes=15))[0]
    store.close()


def test_a_login_refused_with_a_fresh_token_waits_for_a_new_sign_in(tmp_path, idp, oauth_dovecot):
    """Exit 4, not retried poll after poll (the service's AuthBlock), until the sign-in
    changes: the app lacked IMAP permission; an admin grants it; the user signs in again."""
    account = oauth_account(idp, oauth_dovecot)
    settings = Settings(accounts=[account], state={"path": str(tmp_path / "state.db")})
    source = account_tokens(settings.accounts[0], tokens_dir(settings))
    sign_in(source, idp.state.user, lambda _: None, lambda: "")
    idp.state.refuse_logins = True
    store = SqliteStore(settings.state.path_resolved())
    blocked: dict = {}
    now = datetime.now(UTC)
    refused = poll_once(settings, store, Recorder(), now, blocked=blocked)
    assert refused.report.errors[0].exit_code == 4 and "refused the OAuth token" in (
        refused.report.errors[0].message
    )
    assert idp.state.calls.count("refresh_token") == 1  # renewed once, then it gave up
    idp.state.refuse_logins = False
    still = poll_once(settings, store, Recorder(), now + timedelta(minutes=15), blocked=blocked)
    assert "not retried until the password, sign-in or config" in still.report.errors[0].message
    sign_in(source, idp.state.user, lambda _: None, lambda: "")
    later = poll_once(settings, store, Recorder(), now + timedelta(minutes=30), blocked=blocked)
    assert not later.report.errors and len(later.report.overdue) == 2
    store.close()
