"""Settings: the TOML file plus INBOXWATCH_* environment variables, validated once.

Nothing is read at import time; `load_settings(path)` is the one entry point.
Unknown keys are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from inboxwatch.configerrors import describe

# Re-exported: the layers above take every part of the config from config.
from inboxwatch.digestconfig import Digest as Digest  # noqa: PLC0414
from inboxwatch.digestconfig import TeamDigest as TeamDigest  # noqa: PLC0414
from inboxwatch.durations import format_duration, parse_duration
from inboxwatch.errors import ConfigError
from inboxwatch.links import open_template
from inboxwatch.secretfiles import read_secret_file
from inboxwatch.standardsconfig import BusinessHoursConfig, Standards, regex
from inboxwatch.tomlfiles import account_files, read_toml

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


Security = Literal["tls", "starttls", "plain"]
_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OAuth2(BaseModel):
    """`[accounts.oauth2]` / `[smtp.oauth2]`: the app registration inboxwatch signs in with
    (`inboxwatch auth`). Default scopes and endpoints are the provider's (auth.providers)."""

    model_config = _STRICT

    provider: Literal["google", "microsoft", "custom"]
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None  # Google desktop clients have one; Microsoft none
    client_secret_file: str = ""
    tenant: str = "common"  # Microsoft: common, organizations, consumers or a tenant id
    # Microsoft's cloud: login.microsoftonline.us for US Government (GCC High, DoD).
    authority: str = "https://login.microsoftonline.com"
    scopes: list[str] = []
    # provider = "custom": RFC 8414 names; the device flow (RFC 8628) when the last is set.
    authorization_endpoint: str = ""
    token_endpoint: str = ""
    device_authorization_endpoint: str = ""

    @model_validator(mode="after")
    def _complete(self) -> OAuth2:
        if self.client_secret is not None and self.client_secret_file:
            raise ValueError("set either client_secret or client_secret_file, not both")
        endpoints = (self.authorization_endpoint, self.device_authorization_endpoint)
        if self.provider != "custom" and (self.token_endpoint or any(endpoints)):
            raise ValueError("endpoints are set only for provider = custom")
        if self.provider == "custom" and not (self.token_endpoint and any(endpoints)):
            raise ValueError(
                "provider = custom needs token_endpoint and authorization_endpoint "
                "or device_authorization_endpoint"
            )
        return self


class _Server(BaseModel):
    model_config = _STRICT

    host: str = ""
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = "tls"
    allow_insecure: bool = False
    ca_file: str = ""
    username: str = ""
    password: SecretStr | None = None
    password_file: str = ""
    timeout: Duration = timedelta(seconds=30)
    auth: Literal["password", "oauth2"] = "password"
    oauth2: OAuth2 | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> _Server:
        if self.password is not None and self.password_file:
            raise ValueError("set either password or password_file, not both")
        if self.auth == "oauth2" and (self.password is not None or self.password_file):
            raise ValueError("auth = oauth2 signs in with a token: remove password")
        if self.auth == "password" and self.oauth2 is not None:
            raise ValueError('an oauth2 table is used only with auth = "oauth2"')
        if self.ca_file and not Path(self.ca_file).expanduser().is_file():
            raise ValueError(f"ca_file {self.ca_file!r} does not exist")
        return self


# Each security mode's usual port (RFC 8314: implicit TLS 993/465; STARTTLS 143/587).
IMAP_PORTS: dict[str, int] = {"tls": 993, "starttls": 143, "plain": 143}
SMTP_PORTS: dict[str, int] = {"tls": 465, "starttls": 587, "plain": 25}

# The reply window and lookback, written once: the config's defaults, and those of the
# accounts a command line makes up (--demo, --mbox, --maildir).
DEFAULT_WINDOW = timedelta(hours=24)
DEFAULT_LOOKBACK = timedelta(days=30)


class Account(_Server, Standards):
    """One mailbox: the server (_Server), what is read and the window; the rest of its
    reply standard (followup_after, team, rules, business hours…) is Standards'."""

    name: str = Field(min_length=1)
    addresses: list[str] = []
    folders: list[str] = Field(default=["INBOX"], min_length=1)
    sent_folders: list[str] = []
    window: Duration = DEFAULT_WINDOW
    lookback: Duration = DEFAULT_LOOKBACK
    include_cc: bool = False
    ignore_senders: list[str] = []
    ignore_subjects: list[str] = []
    # A keyword you set on a message in your mail client: that thread needs no reply (up to
    # that message). inboxwatch only reads it. "" turns it off.
    # After your reply, a short "thanks" that asks nothing does not make a thread overdue.
    closing_messages: bool = True
    handled_keyword: str = Field(default="$Handled", pattern=r"^[^\s()\\{%*\"\]]*$")
    # The digest's link to each thread: a webmail preset or a URL template (links.py).
    open_url: str = ""
    # Who gets this account's digest, instead of digest.to (a team lead, a shared inbox).
    digest_to: list[str] = []
    # COMPRESS=DEFLATE (RFC 4978) where the server offers it: for a slow link (imap.compress).
    compress: bool = False

    @field_validator("open_url")
    @classmethod
    def _open_url(cls, value: str) -> str:
        if value:
            open_template(value)
        return value

    @field_validator("ignore_subjects")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        return [regex(pattern) for pattern in patterns]

    @model_validator(mode="after")
    def _defaults(self) -> Account:
        if not self.host:
            raise ValueError("host is required")
        if self.auth == "oauth2" and self.oauth2 is None:
            raise ValueError("auth = oauth2 needs an [accounts.oauth2] table (see the README)")
        if not self.addresses:
            if "@" not in self.username:
                raise ValueError("addresses is required when username is not an e-mail address")
            self.addresses = [self.username]
        if self.port is None:
            self.port = IMAP_PORTS[self.security]
        return self


class Smtp(_Server):
    security: Security = "starttls"
    retries: int = Field(default=3, ge=0, le=10)  # transient failures: waits 2s, 8s, 30s, 30s…

    @model_validator(mode="after")
    def _port(self) -> Smtp:
        if self.port is None:
            self.port = SMTP_PORTS[self.security]
        return self


class Service(BaseModel):
    model_config = _STRICT
    poll_interval: Duration = timedelta(minutes=15)
    # One account's whole poll (all its folders): past it that account fails this poll
    # and the next account is read, so one slow server delays no other for longer.
    account_timeout: Duration = timedelta(minutes=15)
    # An HTTP port with /metrics (Prometheus) and /healthz; 0: none.
    health_port: int = Field(default=0, ge=0, le=65535)
    health_address: str = "127.0.0.1"


class State(BaseModel):
    model_config = _STRICT
    path: str = "~/.local/state/inboxwatch/state.db"
    # PostgreSQL instead of the file (store/postgres.py): postgresql://user:pw@host/db, or
    # INBOXWATCH_STATE__URL; the password may come from PGPASSFILE or PGPASSWORD instead.
    url: SecretStr | None = None
    # Replicas on one PostgreSQL lease the accounts for this long (store/leases.py): one
    # that dies has its accounts taken over by the others within it.
    lease: Duration = timedelta(minutes=2)

    def path_resolved(self) -> Path:
        return Path(self.path).expanduser()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INBOXWATCH_", env_nested_delimiter="__", extra="forbid"
    )

    accounts: list[Account] = Field(min_length=1)
    digest: Digest = Digest()
    smtp: Smtp = Smtp()
    service: Service = Service()
    state: State = State()
    digests: list[TeamDigest] = []  # team digests, besides [digest] and digest_to
    # More accounts, one TOML file each (tomlfiles.py), relative to this file.
    accounts_dir: str = ""
    # Business hours shared by name: `business_hours = "office"` in an account.
    calendars: dict[str, BusinessHoursConfig] = {}
    # Accounts read at once (imap/slots.py), and connections to one server at once.
    max_parallel: int = Field(default=32, ge=1, le=256)
    max_per_server: int = Field(default=20, ge=1, le=1000)

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        names = [a.name for a in self.accounts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"account names must be unique: {', '.join(dupes)}")
        for account in self.accounts:
            account.business_hours = account.calendar(self.calendars)
        for n, team in enumerate(self.digests, 1):
            unknown = sorted(set(team.accounts) - set(names))
            if unknown:
                raise ValueError(f"digests[{n}].accounts: no account named {', '.join(unknown)}")
        if self.smtp.auth == "oauth2" and self.smtp.oauth2 is None and smtp_identity(self) is None:
            raise ValueError(
                "smtp: auth = oauth2 needs an [smtp.oauth2] table, or an account with "
                "auth = oauth2 and the same username whose sign-in it shares"
            )
        return self

    def team_digests(self) -> list[tuple[Digest, list[str]]]:
        """Each [[digests]] entry as a whole Digest ([digest]'s keys where it sets none),
        with its accounts."""
        return [
            (
                self.digest.model_copy(
                    update={k: getattr(t, k) for k in t.model_fields_set - {"accounts"}}
                ),
                t.accounts,
            )
            for t in self.digests
        ]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (init), as containers expect.
        return env_settings, init_settings


def user_config_path() -> Path:
    """$XDG_CONFIG_HOME (default ~/.config)/inboxwatch/config.toml: found by every command,
    and where `init` writes."""
    home = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(home).expanduser() / "inboxwatch" / "config.toml"


def find_config(explicit: str | None) -> Path | None:
    """--config, then $INBOXWATCH_CONFIG, ./config.toml, $XDG_CONFIG_HOME (default
    ~/.config)/inboxwatch/config.toml; None: no file, the environment holds it all
    (INBOXWATCH_ACCOUNTS set: a container configured by variables alone)."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return path
    env = os.environ.get("INBOXWATCH_CONFIG")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"INBOXWATCH_CONFIG points at {env}, which does not exist")
        return path
    user = user_config_path()
    for candidate in (Path("config.toml"), user):
        if candidate.is_file():
            return candidate
    if os.environ.get("INBOXWATCH_ACCOUNTS"):
        return None
    raise ConfigError(
        f"no config file found (looked for --config, $INBOXWATCH_CONFIG, ./config.toml, "
        f"{user}; or set INBOXWATCH_ACCOUNTS); run `inboxwatch init` to make one, or "
        "try `inboxwatch demo`"
    )


def load_settings(path: Path | None) -> Settings:
    """The file at `path` with the environment over it; None: the environment alone."""
    if path is None:
        try:
            return Settings()  # type: ignore[call-arg]  # pydantic-settings: from the env
        except ValidationError as exc:
            raise ConfigError(f"the environment (INBOXWATCH_*): {describe(exc, {})}") from None
    data = read_toml(path)
    folder = os.environ.get("INBOXWATCH_ACCOUNTS_DIR") or data.get("accounts_dir")
    if folder:
        data["accounts"] = [*data.get("accounts", []), *_accounts_in(path, str(folder))]
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe(exc, data)}") from None


def _accounts_in(config: Path, folder: str) -> list[dict[str, Any]]:
    """`accounts_dir`'s accounts (relative to the config file), each checked on its own
    first, so that a mistake names its file."""
    found = []
    for path, data in account_files(config.parent / Path(folder).expanduser()):
        try:
            Account(**data)
        except ValidationError as exc:
            raise ConfigError(f"{path}: {describe(exc, data)}") from None
        found.append(data)
    return found


def smtp_identity(settings: Settings) -> Account | None:
    """The account whose OAuth sign-in [smtp] shares: auth = oauth2, no [smtp.oauth2] of
    its own, and the same username (one identity, one token file)."""
    if settings.smtp.auth != "oauth2" or settings.smtp.oauth2 is not None:
        return None
    wanted = settings.smtp.username.lower()
    return next(
        (a for a in settings.accounts if a.auth == "oauth2" and a.username.lower() == wanted),
        None,
    )


def env_password_name(account: str) -> str:
    return "INBOXWATCH_ACCOUNT_" + re.sub(r"[^A-Z0-9]", "_", account.upper()) + "_PASSWORD"


def account_password(account: Account) -> str:
    """An `auth = "password"` account's password (environment, password_file, password)."""
    return resolve_secret(account, f"accounts[{account.name}]", env_password_name(account.name))


def resolve_secret(server: _Server, what: str, env_name: str) -> str:
    """The password from the environment, else password_file, else password."""
    if os.environ.get(env_name):
        return os.environ[env_name]
    if server.password_file:
        return read_secret_file(Path(server.password_file).expanduser(), f"{what}.password_file")
    if server.password is not None:
        return server.password.get_secret_value()
    raise ConfigError(f"{what}: no password; set password_file, password or {env_name}")


def masked_json(settings: Settings) -> str:
    """The effective config as JSON (`check`): secrets as '**********', durations as they
    are written in the config (24h, not pydantic's PT86400S)."""

    def plain(value: object) -> str:
        if isinstance(value, timedelta):
            return format_duration(value)
        if isinstance(value, SecretStr):
            return str(value)  # pydantic masks it
        if isinstance(value, date):
            return value.isoformat()  # business_hours.days_off
        raise TypeError(f"cannot show {type(value).__name__}")

    # By alias: a rule's `from` as the config writes it.
    shown = settings.model_dump(by_alias=True)
    return json.dumps(shown, indent=2, ensure_ascii=False, default=plain)
