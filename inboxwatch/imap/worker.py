"""A second IMAP connection, in a process of its own, that fetches part of a big folder.

Reading and parsing 100,000 header blocks is CPU-bound Python; one process keeps one
core busy while the other idles once the server has answered. For a folder with
more than `headerfetch.PARALLEL_MIN` messages to read, the source hands the last
part of its UIDs to this worker, which logs in on its own connection (RFC 3501
allows several sessions per user), reads them the same read-only way (EXAMINE,
BODY.PEEK) and sends the parsed records back. Anything that goes wrong in the
worker only costs time: the source fetches that part itself.

Frames on the worker's stdin/stdout: 8-byte length + `marshal` data, between two
processes of the same Python; the password is sent in the first frame, never
on the command line or in the environment.
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import os
import select
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from inboxwatch.core.model import Address, MessageMeta, ParseFailure
from inboxwatch.net import Login, ServerLogin

# A running service keeps its session between polls, minutes apart: its worker does not
# keep a second connection and process for that long; the next big read starts another.
IDLE_EXIT = 30.0
_LOGIN_FIELDS = ("name", "host", "port", "security", "allow_insecure", "ca_file", "username")


def _write_frame(stream: IO[bytes], value: Any) -> None:
    _write_raw(stream, marshal.dumps(value))


def _write_raw(stream: IO[bytes], data: bytes) -> None:
    stream.write(len(data).to_bytes(8, "big"))
    stream.write(data)  # not joined to the length: a frame of records is a megabyte
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    """`size` bytes, or fewer at the end of the stream (an unbuffered read may return less)."""
    data = stream.read(size) or b""
    while len(data) < size and (more := stream.read(size - len(data))):
        data += more
    return data


def _read_frame(stream: IO[bytes]) -> Any:
    """The next frame, or None at the end of the stream (the other side is gone)."""
    data = _read_raw(stream)
    return None if data is None else marshal.loads(data)


def _read_raw(stream: IO[bytes]) -> bytes | None:
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


def _time(value: datetime | None) -> str | None:
    """ISO 8601, offset included: exact both ways, and the C parser rebuilds a datetime
    in ~0.1 us (epoch arithmetic with timedeltas costs ~0.35 us)."""
    return None if value is None else value.isoformat()


class _Table:
    """Addresses and address lists sent once each: the parser shares them, so do we."""

    def __init__(self) -> None:
        self.addresses: list[tuple[str, str]] = []
        self.lists: list[tuple[int, ...]] = []
        self._address: dict[int, int] = {}
        self._list: dict[int, int] = {}

    def address(self, address: Address | None) -> int:
        if address is None:
            return -1
        index = self._address.get(id(address))
        if index is None:
            index = self._address[id(address)] = len(self.addresses)
            self.addresses.append((address.name, address.address))
        return index

    def list(self, addresses: tuple[Address, ...]) -> int:
        index = self._list.get(id(addresses))
        if index is None:
            index = self._list[id(addresses)] = len(self.lists)
            self.lists.append(tuple(self.address(a) for a in addresses))
        return index


def encode_scan(messages: Sequence[MessageMeta], failures: Sequence[ParseFailure]) -> bytes:
    """Parsed records as plain tuples for `marshal` (it takes no NamedTuple or datetime).
    Holds the objects it indexes by id() until it returns, so no id is reused."""
    table = _Table()
    rows = [
        (
            *m[:6],
            table.address(m.sender),
            _time(m.received),
            _time(m.date),
            table.list(m.reply_to),
            table.list(m.to),
            table.list(m.cc),
            *m[12:],
        )
        for m in messages
    ]
    broken = [(f.folder, f.uid, f.reason) for f in failures]
    return marshal.dumps((table.addresses, table.lists, rows, broken))


def decode_scan(
    data: bytes, known: dict[tuple[str, str], Address] | None = None
) -> tuple[list[MessageMeta], list[ParseFailure]]:
    """The records of `encode_scan`; `known` shares equal addresses across several."""
    names, lists, rows, broken = marshal.loads(data)
    known = {} if known is None else known
    addresses = [known.get(pair) or known.setdefault(pair, Address(*pair)) for pair in names]
    groups = [tuple(addresses[i] for i in group) for group in lists]
    flag_sets: dict[frozenset[str], frozenset[str]] = {}
    iso = datetime.fromisoformat
    messages = []
    for row in rows:
        date = row[8]
        messages.append(
            MessageMeta(  # by position: marshal gives Any, and 20 keywords cost ~1 us more
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                None if row[6] < 0 else addresses[row[6]],
                iso(row[7]),
                None if date is None else iso(date),
                groups[row[9]],
                groups[row[10]],
                groups[row[11]],
                flag_sets.setdefault(row[12], row[12]),
                row[13],
                row[14],
                row[15],
                row[16],
                row[17],
                row[18],
                row[19],
            )
        )
    return messages, [ParseFailure(*f) for f in broken]


class FetchWorker:
    """The parent's handle: one job at a time, `submit` then `collect`."""

    def __init__(self, account: ServerLogin, password: str, idle: float = IDLE_EXIT) -> None:
        # Same interpreter, same package: from wherever the parent imported it (an
        # installed package, a source checkout on sys.path).
        if not sys.executable:  # embedded: no interpreter to start
            raise OSError("no Python interpreter to start a second connection's worker with")
        home = str(Path(__file__).resolve().parent.parent)
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": home + os.pathsep + path if path else home}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inboxwatch.imap.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        # What the connection needs, as plain values: the config was validated here already.
        fields = {name: getattr(account, name) for name in _LOGIN_FIELDS}
        self.send((fields, account.timeout.total_seconds(), password, idle))

    def send(self, value: Any) -> bool:
        assert self.proc.stdin is not None
        try:
            _write_frame(self.proc.stdin, value)
        except OSError:  # it is gone: the caller reads that as a failed job
            return False
        return True

    def alive(self) -> bool:
        return self.proc.poll() is None

    def submit(self, folder: str, uidvalidity: int, uids: Sequence[int], since: datetime) -> bool:
        return self.send((folder, uidvalidity, runs(uids), _time(since)))

    def collect(self) -> tuple[list[MessageMeta], list[ParseFailure]] | str:
        """The job's records, or why there are none (the caller fetches them itself)."""
        assert self.proc.stdout is not None
        messages: list[MessageMeta] = []
        failures: list[ParseFailure] = []
        known: dict[tuple[str, str], Address] = {}
        try:
            answer = _read_frame(self.proc.stdout)  # ("ok", number of parts) or ("error", why)
            if answer is None:
                return self._ended()
            status, payload = answer
            if status != "ok":
                return str(payload)
            for _ in range(payload):
                part = _read_raw(self.proc.stdout)
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


def _job_within(stdin: IO[bytes], seconds: float) -> bool:
    """Whether the parent says something (a job, or end of jobs) within `seconds`."""
    ready, _, _ = select.select([stdin], [], [], seconds)
    return bool(ready)


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The worker's side: log in, then answer each job until stdin closes."""
    from inboxwatch.errors import InboxwatchError
    from inboxwatch.imap.source import ImapSource

    # The records of a job are long-lived and hold no cycles: the collector would only
    # re-walk the growing heap (as app.collector_paused explains); the process is short-lived.
    gc.disable()
    hello = _read_frame(stdin)
    if hello is None:
        return 1
    fields, timeout, password, idle = hello
    account = Login(**fields, timeout=timedelta(seconds=timeout))
    try:
        source = ImapSource(account, password, worker=False)
    except InboxwatchError as exc:
        _write_frame(stdout, ("error", f"login failed: {exc}"))
        return 1
    try:
        while _job_within(stdin, idle) and (job := _read_frame(stdin)) is not None:
            folder, uidvalidity, uid_runs, since = job
            uids = [uid for first, last in uid_runs for uid in range(first, last + 1)]
            batches = source.fetch_uids(folder, uidvalidity, uids, datetime.fromisoformat(since))
            try:
                # Encoded batch by batch: ~300 bytes a record held instead of ~1.4 KB. Sent
                # only at the end: the parent is busy reading its own part until then, and a
                # pipe holds 64 KB, so a worker writing as it goes would wait on it.
                parts = [encode_scan(scan.messages, scan.failures) for scan in batches]
            except InboxwatchError as exc:
                _write_frame(stdout, ("error", str(exc)))
                continue
            _write_frame(stdout, ("ok", len(parts)))
            while parts:  # each part a frame of its own: no second copy of them all
                _write_raw(stdout, parts.pop(0))
    finally:
        source.close()
    return 0


if __name__ == "__main__":
    frames = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames may reach the parent's pipe
    # Unbuffered: select() in _job_within must not miss a frame already read into a buffer.
    with open(sys.stdin.fileno(), "rb", buffering=0, closefd=False) as jobs:
        code = serve(jobs, frames)
    frames.flush()
    os._exit(code)  # logged out, frames flushed: skip the interpreter's teardown (~0.1 s)
