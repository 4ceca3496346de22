"""Crash safety: `kill -9` of the service mid-poll and mid-send, repeated; the state survives
and the next start sends at most the one digest owed."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import OWNER, mail
from tests.dovecot import free_port
from tests.proxy import RecordingProxy
from tests.smtp import smtp_server

pytestmark = pytest.mark.dovecot
ROUNDS = 3


def write(tmp_path: Path, imap_port: int, user: str, password: str, smtp_port: int) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[[accounts]]\nname = "work"\nhost = "127.0.0.1"\nport = {imap_port}\n'
        f'security = "plain"\nusername = "{user}"\npassword = "{password}"\n'
        f'addresses = ["{OWNER}"]\n[digest]\nto = ["{OWNER}"]\nschedule = "0 8 * * *"\n'
        f'timezone = "UTC"\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\n'
        f'security = "plain"\nretries = 0\n[service]\npoll_interval = "1m"\n'
        f'[state]\npath = "{tmp_path / "state.db"}"\n'
    )
    return path


def start(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "inboxwatch", "run", "--config", str(config)],
        stderr=subprocess.DEVNULL,
        text=True,
    )


def wait_for(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def integrity(path: Path) -> tuple[str, list[tuple[str, str]]]:
    db = sqlite3.connect(path)
    try:
        return (
            db.execute("PRAGMA integrity_check").fetchone()[0],
            db.execute("SELECT period, state FROM digests").fetchall(),
        )
    finally:
        db.close()


@pytest.fixture
def seeded(sent_mailbox):
    now = datetime.now(UTC)
    sent_mailbox.add("Sent", mail(OWNER, "x@y.example"), now - timedelta(days=3))
    for n in range(300):
        sent_mailbox.add(
            "INBOX", mail("Anna <anna@client.example>", subject=f"Q{n}"), now - timedelta(hours=30)
        )
    return sent_mailbox


def test_kill_9_mid_poll_and_mid_send_then_one_digest(ca, dovecot, seeded, tmp_path):
    state = tmp_path / "state.db"
    with smtp_server(ca, "plain") as (_unused, smtp_port):
        for _ in range(ROUNDS):  # killed while fetching: a slow server keeps the poll busy
            with RecordingProxy(dovecot.port, delay=0.2) as proxy:
                process = start(
                    write(tmp_path, proxy.port, seeded.user, dovecot.password, smtp_port)
                )
                wait_for(lambda: b"UID FETCH" in proxy.client_bytes)
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
            assert integrity(state) == ("ok", [])
    for _ in range(ROUNDS):  # killed while the SMTP server sits on the DATA
        with smtp_server(ca, "plain", delay=30) as (handler, smtp_port):
            process = start(write(tmp_path, dovecot.port, seeded.user, dovecot.password, smtp_port))
            wait_for(lambda: handler.attempts > 0)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        check, ledger = integrity(state)
        assert check == "ok" and [s for _p, s in ledger] == ["sending"]
    with smtp_server(ca, "plain") as (handler, smtp_port):
        config = write(tmp_path, dovecot.port, seeded.user, dovecot.password, smtp_port)
        for _ in range(2):  # the next start, and one more poll
            once = subprocess.run(
                [sys.executable, "-m", "inboxwatch", "run", "--once", "--config", str(config)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert once.returncode == 0, once.stderr
    assert len(handler.received) == 1  # the one digest owed, not one per crash
    check, ledger = integrity(state)
    assert check == "ok" and [s for _p, s in ledger] == ["sent"]


def test_the_running_service_logs_one_stamped_line_per_poll(dovecot, sent_mailbox, tmp_path):
    """No APScheduler or imapclient chatter beside the poll's own line; RFC 3339 times."""
    now = datetime.now(UTC)
    sent_mailbox.add("Sent", mail(OWNER, "x@y.example"), now - timedelta(days=3))
    sent_mailbox.add("INBOX", mail("Anna <anna@client.example>"), now - timedelta(hours=30))
    config = write(tmp_path, dovecot.port, sent_mailbox.user, dovecot.password, free_port())
    # No digest.to: polling only (a digest due now would add its own lines).
    config.write_text(re.sub(r"(?m)^to = .*\n", "", config.read_text()))
    config.chmod(0o600)  # it holds the password
    proc = subprocess.Popen(
        [sys.executable, "-m", "inboxwatch", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    while not any("poll:" in line for line in lines):
        line = proc.stderr.readline()
        assert line, "".join(lines)
        lines.append(line)
    proc.send_signal(signal.SIGTERM)
    lines += proc.communicate(timeout=20)[1].splitlines(keepends=True)
    stamped = lines
    assert all(
        re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d inboxwatch: ", s) for s in stamped
    )
    # digest.to not set, running, the poll, stopping: nothing else
    assert [line for line in stamped if "poll:" in line] == [stamped[2]], lines
    assert "1 overdue" in stamped[2] and len(stamped) == 4, lines
    assert "digest.to is not set" in stamped[0]
