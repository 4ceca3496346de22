"""A second IMAP connection, in a process of its own, that fetches part of a big folder.

Reading and parsing 100,000 header blocks is CPU-bound Python; one process keeps one
core busy while the other idles once the server has answered. For a folder with
more than `imap.headerfetch.PARALLEL_MIN` messages to read, the source hands the last
part of its UIDs to this worker, which logs in on its own connection (RFC 3501
allows several sessions per user), reads them the same read-only way (EXAMINE,
BODY.PEEK) and sends the parsed records back. Anything that goes wrong in the
worker only costs time: the source fetches that part itself.

This module is the parent's side (FetchWorker) and the frames both sides use; the
child's side is imap.workermain, and records cross in imap.codec's encoding. Frames on
the worker's stdin/stdout: 8-byte length + `marshal` data, between two processes of
the same Python; the password is sent in the first frame, never on the command line
or in the environment.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from inboxwatch.core.model import Address, MessageMeta, ParseFailure
from inboxwatch.imap.codec import decode_scan, iso_time
from inboxwatch.imap.login import Secret, ServerLogin

# A running service keeps its session between polls, minutes apart: its worker does not
# keep a second connection and process for that long; the next big read starts another.
IDLE_EXIT = 30.0
_LOGIN_FIELDS = (
    "name",
    "host",
    "port",
    "security",
    "allow_insecure",
    "ca_file",
    "username",
    "compress",
)


def write_frame(stream: IO[bytes], value: Any) -> None:
    write_raw(stream, marshal.dumps(value))


def write_raw(stream: IO[bytes], data: bytes) -> None:
    stream.write(len(data).to_bytes(8, "big"))
    stream.write(data)  # not joined to the length: a frame of records is a megabyte
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    """`size` bytes, or fewer at the end of the stream (an unbuffered read may return less)."""
    data = stream.read(size) or b""
    while len(data) < size and (more := stream.read(size - len(data))):
        data += more
    return data


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame, or None at the end of the stream (the other side is gone)."""
    data = read_raw(stream)
    return None if data is None else marshal.loads(data)


def read_raw(stream: IO[bytes]) -> bytes | None:
    head = _read_exact(stream, 8)
    if len(head) < 8:
        return None
    size = int.from_bytes(head, "big")
    data = _read_exact(stream, size)
    return data if len(data) == size else None


def runs(uids: Sequence[int]) -> list[tuple[int, int]]:
    """Ascending UIDs as (first, last) runs: a job of 27,000 UIDs as a list would fill the
    64 KB pipe and hold the parent until the worker has started and read it."""
    out: list[tuple[int, int]] = []
    for uid in uids:
        if out and uid == out[-1][1] + 1:
            out[-1] = (out[-1][0], uid)
        else:
            out.append((uid, uid))
    return out


class FetchWorker:
    """The parent's handle: one job at a time, `submit` then `collect`."""

    def __init__(self, account: ServerLogin, secret: Secret, idle: float = IDLE_EXIT) -> None:
        # Same interpreter, same package: from wherever the parent imported it (an
        # installed package, a source checkout on sys.path).
        if not sys.executable:  # embedded: no interpreter to start
            raise OSError("no Python interpreter to start a second connection's worker with")
        home = str(Path(__file__).resolve().parent.parent)
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": home + os.pathsep + path if path else home}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inboxwatch.imap.workermain"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        # What the connection needs, as plain values: the config was validated here already.
        fields = {name: getattr(account, name) for name in _LOGIN_FIELDS}
        self.send((fields, account.timeout.total_seconds(), secret.value, secret.bearer, idle))

    def send(self, value: Any) -> bool:
        assert self.proc.stdin is not None
        try:
            write_frame(self.proc.stdin, value)
        except OSError:  # it is gone: the caller reads that as a failed job
            return False
        return True

    def alive(self) -> bool:
        return self.proc.poll() is None

    def submit(self, folder: str, uidvalidity: int, uids: Sequence[int], since: datetime) -> bool:
        return self.send((folder, uidvalidity, runs(uids), iso_time(since)))

    def collect(self) -> tuple[list[MessageMeta], list[ParseFailure]] | str:
        """The job's records, or why there are none (the caller fetches them itself)."""
        assert self.proc.stdout is not None
        messages: list[MessageMeta] = []
        failures: list[ParseFailure] = []
        known: dict[tuple[str, str], Address] = {}
        try:
            answer = read_frame(self.proc.stdout)  # ("ok", number of parts) or ("error", why)
            if answer is None:
                return self._ended()
            status, payload = answer
            if status != "ok":
                return str(payload)
            for _ in range(payload):
                part = read_raw(self.proc.stdout)
                if part is None:
                    return self._ended()
                more, broken = decode_scan(part, known)
                messages += more
                failures += broken
        except (OSError, ValueError, TypeError, IndexError, EOFError) as exc:
            return f"unreadable answer ({exc})"  # a broken pipe, garbled records
        return messages, failures

    def _ended(self) -> str:
        return f"the worker ended (exit code {self.proc.poll()})"

    def abandon(self) -> None:
        """Stop it at once: it failed, and may be waiting to write the rest of an answer."""
        self.proc.kill()
        self.close()

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # end of jobs: it logs out and exits
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
