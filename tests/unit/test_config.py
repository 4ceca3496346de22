"""Config: TOML + environment, every key validated, errors that name key and file (exit 3)."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest

from inboxwatch.config import OAuth2, find_config, load_settings, resolve_secret
from inboxwatch.durations import format_duration, parse_duration
from inboxwatch.errors import ConfigError
from inboxwatch.standardsconfig import BusinessHoursConfig, RuleConfig

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = '[[accounts]]\nname = "work"\nhost = "imap.example.com"\nusername = "me@example.com"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_valid_and_documents_every_key():
    settings = load_settings(ROOT / "config.example.toml")
    account = settings.accounts[0]
    text = (ROOT / "config.example.toml").read_text()
    sections = [account, settings.digest, settings.smtp, settings.service, settings.state]
    for model in [*(type(s) for s in sections), OAuth2, RuleConfig, BusinessHoursConfig]:
        for key, field in model.model_fields.items():
            name = field.alias or key
            tables = (f"[accounts.{name}]", f"[[accounts.{name}]]")
            documented = f"{name} =" in text or any(t in text for t in tables)
            assert documented, f"config.example.toml does not document {name}"
    assert len(account.rules) == 2 and account.business_hours is not None


def test_defaults(tmp_path):
    account = load_settings(write(tmp_path, MINIMAL)).accounts[0]
    assert account.addresses == ["me@example.com"] and account.port == 993
    assert account.folders == ["INBOX"] and account.sent_folders == []
    assert account.window == timedelta(hours=24) and account.lookback == timedelta(days=30)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('windw = "2h"\n', "accounts[work].windw: unknown key"),
        ('open_url = "gmial"\n', "accounts[work].open_url: open_url must be a preset"),
        ('window = "soon"\n', "accounts[work].window: 'soon' is not a duration"),
        ('security = "ssl"\n', "accounts[work].security: Input should be 'tls', 'starttls'"),
        ("port = 0\n", "accounts[work].port"),
        ('ignore_subjects = ["("]\n', "is not a valid regular expression"),
        ('password = "a"\npassword_file = "/x"\n', "set either password or password_file"),
        ('ca_file = "/nonexistent.pem"\n', "ca_file '/nonexistent.pem' does not exist"),
        ('[digest]\ntimezone = "Mars/Base"\n', "digest.timezone: unknown time zone"),
        ('[digest]\nschedule = "every day"\n', "digest.schedule"),
        ('[smtp]\nsecurity = "x"\n', "smtp.security"),
        ('[servce]\npoll_interval = "1m"\n', "servce: unknown key"),
        ('auth = "oauth2"\n', "needs an [accounts.oauth2] table"),
        ('auth = "oauth2"\npassword = "x"\n', "signs in with a token: remove password"),
        ('[accounts.oauth2]\nprovider = "google"\nclient_id = "c"\n', 'only with auth = "oauth2"'),
        (
            'auth = "oauth2"\n[accounts.oauth2]\nprovider = "google"\nclient_id = "c"\n'
            'token_endpoint = "http://x"\n',
            "endpoints are set only for provider = custom",
        ),
        (
            'auth = "oauth2"\n[accounts.oauth2]\nprovider = "custom"\nclient_id = "c"\n',
            "provider = custom needs token_endpoint",
        ),
        ('[smtp]\nauth = "oauth2"\n', "an account with auth = oauth2 and the same username"),
    ],
)
def test_invalid_keys_are_named_with_the_file(tmp_path, extra, message):
    path = write(tmp_path, MINIMAL + extra)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert err.value.exit_code == 3


def test_missing_keys_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="accounts: required key is missing"):
        load_settings(write(tmp_path, "[digest]\n"))
    with pytest.raises(ConfigError, match="addresses is required"):
        load_settings(write(tmp_path, MINIMAL.replace("me@example.com", "me")))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[[accounts]\n"))


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("INBOXWATCH_DIGEST__TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("INBOXWATCH_SERVICE__POLL_INTERVAL", "5m")
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.digest.timezone == "Europe/Berlin"
    assert settings.service.poll_interval == timedelta(minutes=5)
    monkeypatch.setenv("INBOXWATCH_DIGEST__TIMEZONE", "Nowhere/Never")
    with pytest.raises(ConfigError, match=r"digest\.timezone"):
        load_settings(write(tmp_path, MINIMAL))


def test_secrets_from_environment_file_or_config(tmp_path, monkeypatch, caplog):
    account = load_settings(write(tmp_path, MINIMAL)).accounts[0]
    with pytest.raises(ConfigError, match="INBOXWATCH_ACCOUNT_WORK_PASSWORD"):
        resolve_secret(account, "accounts[work]", "INBOXWATCH_ACCOUNT_WORK_PASSWORD")
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    os.chmod(secret, 0o644)
    with_file = load_settings(write(tmp_path, MINIMAL + f'password_file = "{secret}"\n'))
    assert resolve_secret(with_file.accounts[0], "a", "UNSET_VAR_X") == "s3cret"
    assert "readable by other users" in caplog.text
    monkeypatch.setenv("INBOXWATCH_ACCOUNT_WORK_PASSWORD", "from-env")
    assert (
        resolve_secret(with_file.accounts[0], "a", "INBOXWATCH_ACCOUNT_WORK_PASSWORD") == "from-env"
    )
    inline = load_settings(write(tmp_path, MINIMAL + 'password = "inline"\n')).accounts[0]
    assert "inline" not in repr(inline)  # SecretStr: never printed


@pytest.mark.parametrize(
    ("extra", "mode", "warned"),
    [
        ('password = "inline"\n', 0o644, True),
        ('password = "inline"\n', 0o600, False),
        ('\n[smtp]\nhost = "smtp.example.com"\npassword = "inline"\n', 0o640, True),
        ("", 0o644, False),  # no password in it: nothing to protect
    ],
)
def test_a_config_holding_a_password_warns_when_others_can_read_it(
    tmp_path, caplog, extra, mode, warned
):
    path = write(tmp_path, MINIMAL + extra)  # tmp_path is new for each case
    os.chmod(path, mode)
    load_settings(path)
    assert ("readable by other users" in caplog.text) is warned
    assert "inline" not in caplog.text


def test_find_config_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INBOXWATCH_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("INBOXWATCH_ACCOUNTS", raising=False)
    with pytest.raises(ConfigError, match="no config file found"):
        find_config(None)
    with pytest.raises(ConfigError, match="does not exist"):
        find_config("missing.toml")
    write(tmp_path, MINIMAL)
    assert find_config(None) == Path("config.toml")
    other = tmp_path / "other.toml"
    other.write_text(MINIMAL)
    monkeypatch.setenv("INBOXWATCH_CONFIG", str(other))
    assert find_config(None) == other


@pytest.mark.parametrize(
    ("text", "hours"), [("90m", 1.5), ("24h", 24), ("2d", 48), ("1w", 168), ("1h30m", 1.5)]
)
def test_durations(text, hours):
    assert parse_duration(text) == timedelta(hours=hours)
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


def test_check_shows_durations_as_the_config_writes_them():
    shown = [format_duration(parse_duration(t)) for t in ("30s", "90m", "24h", "30d", "2w")]
    assert shown == ["30s", "90m", "1d", "30d", "2w"]  # the largest whole unit


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "0m", "2 days"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_the_readmes_by_hand_config_is_complete_and_loads(tmp_path, monkeypatch):
    """The README's manual setup is a whole file, not a line to append somewhere."""
    readme = (ROOT / "README.md").read_text()
    snippet = readme.split("**By hand**")[1].split("```toml\n")[1].split("```")[0]
    monkeypatch.setenv("HOME", str(tmp_path))
    secret = tmp_path / ".config" / "inboxwatch" / "work.password"
    secret.parent.mkdir(parents=True)
    secret.write_text("pw\n")
    secret.chmod(0o600)
    settings = load_settings(write(tmp_path, snippet))
    assert settings.accounts[0].name == "work" and settings.smtp.host == "smtp.example.com"
    assert resolve_secret(settings.accounts[0], "accounts[work]", "NO_SUCH_VARIABLE") == "pw"


def test_accounts_dir_adds_one_account_per_file(tmp_path):
    """Issue 23, item 3: a mailbox added by dropping a file in, no edit of a shared one."""
    folder = tmp_path / "accounts.d"
    folder.mkdir()
    (folder / "support.toml").write_text('host = "imap.example.com"\nusername = "s@example.com"\n')
    (folder / "sales.toml").write_text(
        'name = "Sales team"\nhost = "imap.example.com"\nusername = "x@example.com"\n'
    )
    (folder / "notes.txt").write_text("not an account")
    settings = load_settings(write(tmp_path, 'accounts_dir = "accounts.d"\n' + MINIMAL))
    assert [a.name for a in settings.accounts] == ["work", "Sales team", "support"]
    (folder / "bad.toml").write_text(
        'host = "imap.example.com"\nusername = "b@example.com"\nwindow = "soon"\n'
    )
    with pytest.raises(ConfigError, match=r"accounts\.d/bad\.toml: window: .*not a duration"):
        load_settings(write(tmp_path, 'accounts_dir = "accounts.d"\n' + MINIMAL))
    (folder / "bad.toml").write_text('[[accounts]]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: one account per file"):
        load_settings(write(tmp_path, 'accounts_dir = "accounts.d"\n' + MINIMAL))
    (folder / "bad.toml").unlink()
    only_files = write(tmp_path, 'accounts_dir = "accounts.d"\n')  # no [[accounts]] at all
    assert len(load_settings(only_files).accounts) == 2
    with pytest.raises(ConfigError, match=r"accounts_dir .*missing.* does not exist"):
        load_settings(write(tmp_path, 'accounts_dir = "missing"\n' + MINIMAL))


def test_team_digests_take_digest_keys_they_do_not_set(tmp_path):
    base = MINIMAL + '[digest]\nto = ["me@example.com"]\ntimezone = "Europe/Berlin"\n'
    team = '[[digests]]\naccounts = ["work"]\nto = ["lead@example.com"]\nschedule = "0 9 * * 1"\n'
    settings = load_settings(write(tmp_path, base + team))
    [(config, accounts)] = settings.team_digests()
    assert (config.to, config.schedule, config.timezone) == (
        ["lead@example.com"],
        "0 9 * * 1",
        "Europe/Berlin",
    )
    assert accounts == ["work"]
    for bad, why in [
        (team.replace('["work"]', '["wrok"]'), "digests[1].accounts: no account named wrok"),
        (team + 'notify = ["json://x"]\n', "notify is set once, in [digest]"),
        (team.replace('to = ["lead@example.com"]\n', ""), "digests[1].to: required"),
        (team.replace("0 9 * * 1", "often"), "is not a cron expression"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(why)):
            load_settings(write(tmp_path, base + bad))
