"""`inboxwatch init` end to end: servers found by a local autoconfig server (and offline
from the built-in table), the read-only login against Dovecot, SMTP against aiosmtpd,
the 7-day preview, and a config the other commands then use."""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from inboxwatch.cli.main import cli
from inboxwatch.config import load_settings
from tests.conftest import OWNER, mail
from tests.smtp import smtp_server

pytestmark = pytest.mark.dovecot
H = timedelta(hours=1)


class Autoconfig(BaseHTTPRequestHandler):
    """A provider's autoconfig server (Thunderbird's config-v1.1.xml)."""

    xml: ClassVar[str] = ""
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Autoconfig.asked.append(self.path)
        body = Autoconfig.xml.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def autoconfig(imap_port: int, smtp_port: int, user: str) -> Iterator[str]:
    Autoconfig.asked = []
    Autoconfig.xml = f"""<?xml version="1.0"?>
<clientConfig version="1.1"><emailProvider id="mydomain.example">
  <domain>mydomain.example</domain>
  <incomingServer type="pop3"><hostname>pop.invalid</hostname><port>995</port>
    <socketType>SSL</socketType></incomingServer>
  <incomingServer type="imap"><hostname>127.0.0.1</hostname><port>{imap_port}</port>
    <socketType>plain</socketType><username>{user}</username>
    <authentication>password-cleartext</authentication></incomingServer>
  <outgoingServer type="smtp"><hostname>127.0.0.1</hostname><port>{smtp_port}</port>
    <socketType>plain</socketType><username>{user}</username></outgoingServer>
</emailProvider></clientConfig>"""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Autoconfig)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/mail/config-v1.1.xml"
    finally:
        server.shutdown()


def seed(box) -> None:
    now = datetime.now(UTC)
    box.add("Sent", mail(OWNER, "x@y.example", subject="Hello"), now - 72 * H)
    box.add("INBOX", mail("Anna <anna@client.example>", subject="Quote?"), now - 48 * H)
    box.add("INBOX", mail("Old <old@client.example>", subject="Ancient"), now - 240 * H)


def test_init_finds_servers_by_autoconfig_logs_in_previews_and_writes(
    ca, run, tmp_path, dovecot, sent_mailbox
):
    seed(sent_mailbox)
    secret = tmp_path / "pw"
    secret.write_text(dovecot.password + "\n")
    secret.chmod(0o600)
    config = tmp_path / "conf" / "config.toml"
    login = (sent_mailbox.user, dovecot.password)
    with (
        smtp_server(ca, "plain", auth=True, login=login) as (_, smtp_port),
        autoconfig(dovecot.port, smtp_port, sent_mailbox.user) as url,
    ):
        result = run(
            "init", "--non-interactive", "--config", str(config), "--email", OWNER,
            "--password-file", str(secret), "--autoconfig", url, "--timezone", "Europe/Berlin",
        )  # fmt: skip
        assert result.code == 0, result.err
        assert parse_qs(urlsplit(Autoconfig.asked[0]).query) == {"emailaddress": [OWNER]}
        assert f"IMAP 127.0.0.1:{dovecot.port} (plain), found in the autoconfig {url}" in (
            result.out
        )
        assert "Logged in read-only" in result.out and "sent folder: ['Sent']" in result.out
        assert f"connected to 127.0.0.1:{smtp_port} (plain) as {sent_mailbox.user}" in result.out
        preview = result.out.split("The last 7 days")[1]
        assert "Quote?" in preview and "Ancient" not in preview  # 10 days old: not previewed
        settings = load_settings(config)
        account = settings.accounts[0]
        assert (account.name, account.username, account.addresses) == (
            "mydomain",
            sent_mailbox.user,
            [OWNER],
        )
        assert account.sent_folders == ["Sent"] and account.password_file == str(secret)
        assert settings.digest.to == [OWNER] and settings.digest.timezone == "Europe/Berlin"
        assert settings.smtp.port == smtp_port and settings.smtp.password_file == str(secret)
        text = config.read_text()
        assert "# inboxwatch configuration, written by `inboxwatch init`." in text
        assert "# found in the autoconfig" in text and dovecot.password not in text
        scanned = run("scan", "--config", str(config), "--format", "json")
        assert scanned.code == 1, scanned.err
        assert {e["subject"] for e in scanned.json()["overdue"]} == {"Quote?", "Ancient"}
        again = run("init", "--non-interactive", "--config", str(config), "--email", OWNER)
        assert again.code == 3 and "exists; --force replaces it" in again.err


def test_init_offline_from_the_built_in_table(run, tmp_path):
    config = tmp_path / "config.toml"
    result = run(
        "init", "--non-interactive", "--offline", "--config", str(config),
        "--email", "sam@gmail.com", "--oauth2-client-id", "123.apps.example", "--no-preview",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "IMAP imap.gmail.com:993 (tls), found in the built-in table (gmail.com)" in result.out
    assert f"inboxwatch --config {config} auth gmail" in result.out
    settings = load_settings(config)
    account = settings.accounts[0]
    assert account.username == "sam@gmail.com" and account.host == "imap.gmail.com"
    assert account.auth == "oauth2" and account.oauth2 is not None
    assert (account.oauth2.provider, account.oauth2.client_id) == ("google", "123.apps.example")
    assert account.open_url == "gmail" and settings.smtp.auth == "oauth2"
    # Offline, an unknown domain needs its server named.
    unknown = run(
        "init", "--non-interactive", "--offline", "--config", str(tmp_path / "other.toml"),
        "--email", "me@nowhere.example",
    )  # fmt: skip
    assert unknown.code == 2 and "--imap-host is needed with --non-interactive" in unknown.err
    assert not (tmp_path / "other.toml").exists()


def test_init_asks_and_keeps_the_password_in_a_private_file(tmp_path, dovecot, sent_mailbox):
    seed(sent_mailbox)
    config = tmp_path / "config.toml"
    answers = f"{OWNER}\n{dovecot.password}\n"
    result = CliRunner().invoke(
        cli,
        [
            "init",
            "--config",
            str(config),
            "--offline",
            "--imap-host",
            "127.0.0.1",
            "--imap-port",
            str(dovecot.port),
            "--imap-security",
            "plain",
            "--username",
            sent_mailbox.user,
            "--name",
            "work",
        ],
        input=answers,
    )
    assert result.exit_code == 0, result.output
    secret = tmp_path / "work.password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_text() == dovecot.password + "\n"
    assert load_settings(config).accounts[0].password_file == str(secret)
    assert dovecot.password not in config.read_text() and "Quote?" in result.output
    assert stat.S_IMODE(config.stat().st_mode) == 0o644  # no secret in it
    assert Path(config).read_text().count("[[accounts]]") == 1


def test_init_prints_the_config_for_a_container(run, tmp_path):
    """`--config -`: the config alone on stdout (`docker compose run init > config.toml`),
    the talk on stderr; the password file is the container's secret."""
    secret = tmp_path / "imap_password"  # /run/secrets/imap_password in the container
    secret.write_text("pw")
    secret.chmod(0o600)
    result = run(
        "init", "--non-interactive", "--offline", "--config", "-", "--no-preview",
        "--email", "sam@fastmail.com", "--password-file", str(secret),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.out.startswith("# inboxwatch configuration")
    assert "found in the built-in table (fastmail.com)" in result.err
    (tmp_path / "config.toml").write_text(result.out)
    import tomllib

    account = tomllib.loads(result.out)["accounts"][0]
    assert account["password_file"] == str(secret)
    assert account["host"] == "imap.fastmail.com" and account["username"] == "sam@fastmail.com"
    needs = run("init", "--non-interactive", "--offline", "--config", "-", "--email", "a@b.c")
    assert needs.code == 2 and "--config - needs --password-file" in needs.err
