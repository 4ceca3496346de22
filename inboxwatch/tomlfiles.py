"""Reading the config's TOML files: the main one, and `accounts_dir`'s one account per file
(issue 23: a mailbox is added by dropping a file in, without editing a shared one)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from inboxwatch.errors import ConfigError
from inboxwatch.secretfiles import warn_if_readable


def read_toml(path: Path) -> dict[str, Any]:
    """The file's table; one line naming the file when it cannot be read or is not TOML.
    A file holding a password that others can read gets a warning."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    if _holds_password(data):
        warn_if_readable(path, mode, "holds a password")
    return data


def _holds_password(data: dict[str, Any]) -> bool:
    """An inline `password` at the top (an account's file), under [[accounts]] or [smtp]."""
    accounts = data.get("accounts")
    servers = [data, *(accounts if isinstance(accounts, list) else []), data.get("smtp")]
    return any(isinstance(server, dict) and "password" in server for server in servers)


def account_files(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Each `*.toml` in `folder` (sorted by name) as one account's keys; its `name`
    defaults to the file's (`support.toml`: support)."""
    if not folder.is_dir():
        raise ConfigError(f"accounts_dir {folder} does not exist or is not a directory")
    found = []
    for path in sorted(folder.glob("*.toml")):
        data = read_toml(path)
        if "accounts" in data:
            raise ConfigError(
                f"{path}: one account per file: its keys at the top, without [[accounts]]"
            )
        data.setdefault("name", path.stem)
        found.append((path, data))
    return found
