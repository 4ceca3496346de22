"""What an IMAP session needs to log in: the config's Account, or a worker's plain Login."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol


class ServerLogin(Protocol):
    """What an IMAP session needs of an account: config.Account, or a worker's Login."""

    @property
    def name(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int | None: ...
    @property
    def security(self) -> str: ...
    @property
    def allow_insecure(self) -> bool: ...
    @property
    def ca_file(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def timeout(self) -> timedelta: ...
    @property
    def compress(self) -> bool: ...


@dataclass(frozen=True)
class Login:
    """A ServerLogin without pydantic (a worker process starts ~0.1 s sooner without it)."""

    name: str
    host: str
    port: int | None
    security: str
    allow_insecure: bool
    ca_file: str
    username: str
    timeout: timedelta
    compress: bool = False


@dataclass(frozen=True)
class Secret:
    """How a session signs in: a password (LOGIN), or an OAuth 2.0 access token (SASL
    XOAUTH2) with `renew`, which is handed the token a server refused and returns a new
    one (auth.refresh), for one more try."""

    value: str
    bearer: bool = False
    renew: Callable[[str], str] | None = None

    def __repr__(self) -> str:  # never the secret itself, in a traceback at -vv either
        return f"Secret(bearer={self.bearer})"
