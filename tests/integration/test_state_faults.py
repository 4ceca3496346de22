"""The state file under a full disk, a read-only mount, another program's lock, a
directory, deletion under the running service and damage (issue 22, defects 3, 4, 9).

Real file systems: a small tmpfs and a read-only bind mount (as root, or as a plain user
in the user namespace scripts/test makes). Where mounting is impossible the test fails,
it does not skip.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from inboxwatch.config import Settings
from inboxwatch.core.ports import FolderState
from inboxwatch.service.health import health
from inboxwatch.service.scheduler import Scheduler
from inboxwatch.store.sqlite import BIG_COMMIT, SqliteStore
from tests.conftest import mail
from tests.integration.test_service import T0, Recorder, _cached_meta, seed, settings_for

pytestmark = pytest.mark.dovecot
H = timedelta(hours=1)
DAY = 24 * H


# mount(2) itself, not the mount program: util-linux's refuses anyone whose uid is not
# 0, even with CAP_SYS_ADMIN in a user namespace (how scripts/test runs a plain user).
_LIBC = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_REMOUNT, MS_BIND, MNT_DETACH = 1, 32, 4096, 2


def mount(source: str | None, target: Path, fstype: str | None, flags: int, data: str = "") -> None:
    done = _LIBC.mount(
        source and source.encode(), str(target).encode(), fstype and fstype.encode(), flags,
        data.encode() if data else None,
    )  # fmt: skip
    error = ctypes.get_errno()
    assert done == 0, (
        f"mount {target}: {os.strerror(error)} (the test needs root, or a plain user with "
        "unprivileged user namespaces: scripts/test runs it in one)"
    )


def umount(target: Path) -> None:
    assert _LIBC.umount2(str(target).encode(), MNT_DETACH) == 0, os.strerror(ctypes.get_errno())


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    mount("tmpfs", path, "tmpfs", 0, f"size={size}")
    try:
        yield path
    finally:
        umount(path)


def fill(directory: Path) -> Path:
    """Write until the file system says no more."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def service(settings: Settings, sender: Recorder, clock: Clock) -> Scheduler:
    return Scheduler(settings, sender, clock=clock)


def state_config(tmp_path: Path, path: Path) -> Path:
    """A config with one account the test never reaches, and the state at `path`."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[[accounts]]\nname = "w"\nhost = "127.0.0.1"\nsecurity = "plain"\n'
        f'username = "me@x.example"\npassword = "p"\n[state]\npath = "{path}"\n'
    )
    config.chmod(0o600)
    return config


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_full_disk_fails_before_smtp_with_one_line(dovecot, sent_mailbox, tmp_path, caplog):
    seed(sent_mailbox)
    with tmpfs(tmp_path / "small", "2m") as small:
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
        settings.state.path = str(small / "state.db")
        sender, clock = Recorder(), Clock()
        scheduler = service(settings, sender, clock)
        try:
            assert scheduler.job() == 0 and len(sender.sent) == 1
            filler = fill(small)
            sent_mailbox.add("INBOX", mail("Bo <bo@x.example>", subject="New"), T0)
            caplog.clear()
            clock.now = T0 + DAY  # the next period's digest is due
            assert scheduler.job() == 3
            assert len(sender.sent) == 1  # refused before SMTP: the ledger could not say "sent"
            (line,) = errors(caplog)
            assert "no space left" in line.getMessage() and line.exc_info is None
            assert "Traceback" not in caplog.text
            filler.unlink()
            clock.now = T0 + DAY + H
            assert scheduler.job() == 0 and len(sender.sent) == 2
            assert scheduler.job() == 0 and len(sender.sent) == 2
        finally:
            scheduler.close()


def test_a_read_only_state_directory(dovecot, sent_mailbox, tmp_path, caplog, run):
    seed(sent_mailbox)
    state = tmp_path / "state"
    state.mkdir()
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    settings.state.path = str(state / "state.db")
    sender, clock = Recorder(), Clock()
    scheduler = service(settings, sender, clock)
    mount(str(state), state, None, MS_BIND)
    try:
        assert scheduler.job() == 0
        mount(None, state, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        sent_mailbox.add("INBOX", mail("Bo <bo@x.example>", subject="New"), T0)
        clock.now = T0 + DAY
        caplog.clear()
        assert scheduler.job() == 3 and len(sender.sent) == 1
        (line,) = errors(caplog)
        assert "read-only file system" in line.getMessage()
        scheduler.close()
        result = run("run", "--once", "--config", str(state_config(tmp_path, state / "state.db")))
        assert result.code == 3 and "read-only file system" in result.err
        assert "Traceback" not in result.err
    finally:
        umount(state)


def test_a_database_locked_by_another_program_is_exit_7(tmp_path, run):
    path = tmp_path / "state.db"
    SqliteStore(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # a sqlite3 shell or a backup tool mid-write
    try:
        result = run("run", "--once", "--config", str(state_config(tmp_path, path)))
        assert result.code == 7 and "locked by another program" in result.err
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_directory_as_state_path_is_exit_3(tmp_path, run):
    (tmp_path / "state.db").mkdir()
    result = run("run", "--once", "--config", str(state_config(tmp_path, tmp_path / "state.db")))
    assert result.code == 3 and "is a directory" in result.err and "Traceback" not in result.err


def test_the_state_file_deleted_under_the_service(dovecot, sent_mailbox, tmp_path, caplog):
    """It kept writing to the unlinked file; a restart sent the period's digest again."""
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    path = Path(settings.state.path)
    sender, clock = Recorder(), Clock()
    scheduler = service(settings, sender, clock)
    try:
        assert scheduler.job() == 0 and len(sender.sent) == 1
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        clock.now = T0 + H
        assert scheduler.job() == 0
        assert any("deleted" in r.getMessage() for r in caplog.records)
        assert path.exists() and path.stat().st_mode & 0o777 == 0o600
        assert health(settings, T0 + H)[0]  # health reads the restored file
    finally:
        scheduler.close()
    restarted = service(settings, sender, clock)  # a restart in the same period
    try:
        assert restarted.job() == 0 and len(sender.sent) == 1
    finally:
        restarted.close()


def damage(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(os.urandom(64 * 1024))
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    else:  # one cached message row that no longer decodes
        db = sqlite3.connect(path)
        db.execute("UPDATE messages SET meta = '{not json' WHERE uid = 1")
        db.commit()
        db.close()


@pytest.mark.parametrize("how", ["garbage", "truncated", "bad-row"])
def test_a_damaged_state_file_is_set_aside_and_rebuilt(
    dovecot, sent_mailbox, tmp_path, caplog, run, how
):
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    path = Path(settings.state.path)
    sender, clock = Recorder(), Clock()
    scheduler = service(settings, sender, clock)
    assert scheduler.job() == 0 and len(sender.sent) == 1
    scheduler.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    scheduler.close()
    damage(path, how)
    clock.now = T0 + H
    caplog.clear()
    scheduler = service(settings, sender, clock)
    try:
        code = scheduler.job()
        if how == "bad-row":  # a sound file: its kept report is carried, nothing read; the
            clock.now = T0 + 25 * H  # next whole read (the digest's) meets the row
            assert code == 0 and scheduler.job() == 0
        # Rebuilt from the mailbox: the three threads are cached again.
        assert sorted(scheduler.store.messages("work", "INBOX")) == [1, 2, 3]
    finally:
        scheduler.close()
    if how == "bad-row":  # a sound file with one bad cached row: that folder is read again
        assert len(sender.sent) == 2
        assert any("damaged" in r.getMessage() for r in caplog.records)
        return
    assert list(tmp_path.glob("state.db.corrupt-*"))
    assert any("damaged" in r.getMessage() for r in errors(caplog))
    # The ledger went with the file: the period's digest waits for the user's word.
    assert code == 3 and len(sender.sent) == 1
    config = state_config(tmp_path, path)
    held = run("repair", "--config", str(config))
    assert held.code == 3 and "--accept-resend" in held.err
    accepted = run("repair", "--accept-resend", "--config", str(config))
    assert accepted.code == 0, accepted.err
    scheduler = service(settings, sender, clock)
    try:
        assert scheduler.job() == 0 and len(sender.sent) == 2
    finally:
        scheduler.close()


def test_health_on_a_damaged_file_is_one_line(tmp_path, run):
    path = tmp_path / "state.db"
    path.write_bytes(os.urandom(8192))
    result = run("health", "--config", str(state_config(tmp_path, path)))
    assert result.code == 3 and "damaged" in result.err and "Traceback" not in result.err


def _checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "state-checkpoint"]


def _rows_in_file(path: Path, copy: Path) -> int:
    """The cached messages the database file itself holds, its write-ahead log left out."""
    shutil.copyfile(path, copy)
    db = sqlite3.connect(copy)
    try:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.DatabaseError:  # copied while a checkpoint wrote it: look again
        return -1
    finally:
        db.close()


def test_a_big_commit_is_copied_into_the_file_off_the_committing_thread(tmp_path):
    """A first poll writes tens of MB of log; SQLite copied it back into the file inside
    the COMMIT the poll waited for (0.3-0.6 s at 100,000 messages). A thread of the
    store's own does it now, so only the file, not the log, shows when it is done. Small
    commits (every CLI run's) start no thread, and close() stops it with nothing left out."""
    path, copy = tmp_path / "s.db", tmp_path / "copy.db"
    store = SqliteStore(path)
    metas = [_cached_meta()._replace(uid=n) for n in range(1, BIG_COMMIT + 500)]
    try:
        store.record_poll("a", T0)
        assert not _checkpointers()
        with store.transaction():
            state = FolderState(7, len(metas) + 1, None, len(metas))
            store.save_folder("a", "INBOX", state, metas, (), True)
        assert _checkpointers()
        deadline = time.monotonic() + 30
        while _rows_in_file(path, copy) != len(metas):
            assert time.monotonic() < deadline, "the log was never copied into the file"
            time.sleep(0.05)
        with store.transaction():  # the store writes on beside its checkpoints
            store.save_folder("a", "Sent", FolderState(8, 2, None, 1), metas[:1], (), True)
    finally:
        store.close()
    assert not _checkpointers()
    assert _rows_in_file(path, copy) == len(metas) + 1
    reopened = SqliteStore(path)
    try:
        assert len(reopened.messages("a", "INBOX")) == len(metas)
    finally:
        reopened.close()
