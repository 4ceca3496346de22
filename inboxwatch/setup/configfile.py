"""The config `inboxwatch init` writes: complete, commented, and loadable as it stands.

Values go through `toml_value` (TOML basic strings share JSON's escapes), so an address
or a path with quotes or backslashes cannot break the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from inboxwatch.setup.discover import Server


def toml_value(value: str | int | bool | list[str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Answers:
    """What `init` learnt or was told."""

    name: str
    email: str
    username: str
    imap: Server
    smtp: Server | None
    password_file: str = ""  # empty with OAuth
    oauth2: str = ""  # google | microsoft
    client_id: str = ""
    sent_folders: list[str] = field(default_factory=list)  # empty: discovered at each run
    open_url: str = ""
    timezone: str = "UTC"
    source: str = ""  # how the servers were found, said in the file


def _line(key: str, value: str | int | bool | list[str], why: str = "") -> str:
    text = f"{key} = {toml_value(value)}"
    return f"{text:<40}# {why}" if why else text


def _sent_why(sent: list[str]) -> str:
    if sent:
        return "marked SPECIAL-USE \\Sent (RFC 6154) on the server"
    return "[]: found at each run (SPECIAL-USE, then usual names)"


def _account(a: Answers) -> list[str]:
    lines = [
        "[[accounts]]",
        _line("name", a.name, "shown in reports; `scan --account NAME`"),
        _line("host", a.imap.host, a.source),
        _line("port", a.imap.port),
        _line("security", a.imap.security, "tls | starttls | plain"),
        _line("username", a.username),
    ]
    if a.oauth2:
        lines.append(_line("auth", "oauth2", "signed in with `inboxwatch auth NAME`"))
    else:
        lines.append(_line("password_file", a.password_file, "the password alone, mode 0600"))
    lines += [
        _line("addresses", [a.email], "every address you reply from"),
        _line("folders", ["INBOX"]),
        _line("sent_folders", a.sent_folders, _sent_why(a.sent_folders)),
        _line("window", "24h", "your reply standard: 90m, 24h, 2d, 1w"),
        _line("lookback", "30d", "how far back mail is read"),
        _line("open_url", a.open_url, "the digest's link: gmail | fastmail | outlook | …"),
    ]
    if a.oauth2:
        lines += [
            "",
            "[accounts.oauth2]",
            _line("provider", a.oauth2),
            _line("client_id", a.client_id, "your app registration (README: OAuth 2.0)"),
        ]
    return lines


def _smtp(a: Answers) -> list[str]:
    if a.smtp is None:
        return ["# [smtp]: no SMTP server was found; set one to send the digest by e-mail"]
    lines = [
        "[smtp]",
        _line("host", a.smtp.host),
        _line("port", a.smtp.port),
        _line("security", a.smtp.security),
        _line("username", a.username),
    ]
    if a.oauth2:
        lines.append(_line("auth", "oauth2", "shares the account's sign-in"))
    else:
        lines.append(_line("password_file", a.password_file, "the same password"))
    return lines


def render(a: Answers) -> str:
    """The whole file; config.example.toml documents every other key."""
    return "\n".join(
        [
            "# inboxwatch configuration, written by `inboxwatch init`.",
            "# Every key: config.example.toml and the README. Check it: inboxwatch check",
            "",
            *_account(a),
            "",
            "[digest]",
            _line("to", [a.email], "who gets the digest"),
            _line("schedule", "0 8 * * 1-5", "cron, in `timezone`: 08:00 on weekdays"),
            _line("timezone", a.timezone),
            _line("send_when_empty", False, 'true: also a "nobody is waiting" digest'),
            "",
            *_smtp(a),
            "",
        ]
    )
