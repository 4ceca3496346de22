"""`[digest]` and `[[digests]]`: when the digest goes out, to whom, and how it looks."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from inboxwatch.standardsconfig import zone_name

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Digest(BaseModel):
    model_config = _STRICT

    to: list[str] = []
    sender: str = ""
    schedule: str = "0 8 * * 1-5"
    timezone: str = "UTC"
    send_when_empty: bool = False
    # Apprise URLs the digest is also posted to (ntfys://…, slack://…, json://…): secrets.
    notify: list[SecretStr] = []
    template_dir: str = ""  # your own digest.html.j2 / digest.txt.j2 override the shipped ones

    @field_validator("template_dir")
    @classmethod
    def _templates(cls, path: str) -> str:
        if path and not Path(path).expanduser().is_dir():
            raise ValueError(f"template_dir {path!r} is not a directory")
        return path

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        return zone_name(name)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, expr: str) -> str:
        from inboxwatch.periods import cron_trigger

        try:
            cron_trigger(expr, "UTC")
        except ValueError as exc:
            raise ValueError(f"{expr!r} is not a cron expression: {exc}") from exc
        return expr


class TeamDigest(Digest):
    """`[[digests]]`: a digest of some `accounts` to its own `to` (a team lead's), on its
    own `schedule`; every key it does not set is [digest]'s (Settings.team_digests)."""

    accounts: list[str] = Field(min_length=1)
    to: list[str] = Field(min_length=1)

    @field_validator("notify")
    @classmethod
    def _no_notify(cls, urls: list[SecretStr]) -> list[SecretStr]:
        if urls:
            raise ValueError("notify is set once, in [digest]")
        return urls
