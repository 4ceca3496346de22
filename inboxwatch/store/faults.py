"""What went wrong with the state file, in one line a user can act on.

SQLite reports a full disk as SQLITE_FULL only where it noticed it itself; a write
the kernel refuses (ENOSPC, EROFS) surfaces as SQLITE_IOERR or SQLITE_READONLY, so
the file system is asked (statvfs) before any other wording is chosen.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from inboxwatch.errors import ConfigError, CorruptState, InboxwatchError, LockError, StateError

# Below this much free space the digest is not sent: the ledger must be able to record it
# ("sent") after SMTP took it, or the next poll sends it again (service.ledger).
MIN_FREE_BYTES = 1024 * 1024
_BUSY, _LOCKED, _READONLY, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 11, 13, 14, 26


def free_bytes(path: Path) -> tuple[int, bool]:
    """Free bytes for an unprivileged writer on path's file system, and whether it is
    mounted read-only."""
    try:
        stat = os.statvfs(path.parent)
    except OSError:
        return MIN_FREE_BYTES, False
    return stat.f_bavail * stat.f_frsize, bool(stat.f_flag & os.ST_RDONLY)


def space_error(path: Path) -> StateError | None:
    """The file system's own reason a write may fail: read-only, or (nearly) full."""
    free, readonly = free_bytes(path)
    if readonly:
        return StateError(
            f"state.path {path}: read-only file system; mount it read-write or point "
            "state.path at a writable place"
        )
    if free < MIN_FREE_BYTES:
        return StateError(
            f"state.path {path}: no space left on the device ({free // 1024} KB free); "
            "free some space (nothing was lost: the last good state is kept)"
        )
    return None


# What SQLite's own codes mean once the file system was ruled out (space_error).
_BY_CODE = {
    _READONLY: "the file is read-only; make it writable",
    _FULL: "no space left on the device; free some space",
    _CANTOPEN: "cannot open it; check the path and permissions",
}


def state_error(path: Path, exc: sqlite3.Error | OSError) -> InboxwatchError:
    """The one line for a failed state operation (the SQLite error code decides)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if isinstance(exc, IsADirectoryError):
        found: InboxwatchError | None = ConfigError(
            f"state.path {path} is a directory; name a file, e.g. {path}/state.db"
        )
    elif code in (_CORRUPT, _NOTADB):
        found = CorruptState(f"state.path {path} is damaged ({exc})")
    elif code in (_BUSY, _LOCKED):
        found = LockError(
            f"state.path {path} is locked by another program (a backup or a sqlite3 shell?); "
            "close it and try again"
        )
    else:
        found = space_error(path)
    if found is not None:
        return found
    detail = exc.strerror if isinstance(exc, OSError) else str(exc)
    text = _BY_CODE.get(code, f"{detail}; check the disk and the file's permissions")
    return StateError(f"state.path {path}: {text}")
