"""Files that hold a secret (a password, an OAuth client secret): read, with a line that
says why one cannot be, and a warning when other users can read one.

The container runs as uid 10001: a secret file owned by root with mode 0600 (what
`docker compose` bind-mounts from the host as it is) cannot be read there, and
"Permission denied" alone did not say what to change.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from pathlib import Path

from inboxwatch.errors import ConfigError

_WARNED: set[Path] = set()


def read_secret_file(path: Path, key: str) -> str:
    """The file's text without its line end; `key` names it in errors (accounts[work].…)."""
    try:
        mode = path.stat().st_mode
        secret = path.read_text(encoding="utf-8").rstrip("\r\n")
    except PermissionError:
        raise ConfigError(_unreadable(path, key)) from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    warn_if_readable(path, mode, "holds a secret")
    return secret


def _unreadable(path: Path, key: str) -> str:
    me = os.geteuid()
    try:
        st = path.stat()
        whose = f"it belongs to uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):04o}"
    except OSError:
        whose = "its directory cannot be searched"
    return (
        f"{key}: {path} cannot be read by uid {me} ({whose}); give it to that user and keep "
        f"it private: chown {me} {path} && chmod 600 {path} (the container runs as uid 10001)"
    )


def warn_if_readable(path: Path, mode: int, what: str) -> None:
    """A secret readable by group or others: one warning per file and process (the
    service reads the password file every poll)."""
    if mode & (stat.S_IRGRP | stat.S_IROTH) and path not in _WARNED:
        _WARNED.add(path)
        logging.getLogger(__name__).warning(
            "%s %s and is readable by other users; chmod 600 it", path, what
        )


def write_atomically(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` so that a crash leaves the old file or the new one, never half of
    either; mode 0600 (the default) from the first byte (mkstemp), never wider while
    the secret is in it. Raises OSError."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    """The rename itself is durable only once the directory is synced (POSIX)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
