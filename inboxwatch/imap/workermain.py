"""The worker process's side of imap.worker: `python -m inboxwatch.imap.workermain`.

It logs in on a connection of its own with the Login and password of the first frame,
then answers each job (folder, UIDVALIDITY, UID runs, since) with the parsed records,
encoded by imap.codec. A module of its own so that the parent's handle (imap.worker)
need not import the session (imap.source), which imports the handle.
"""

from __future__ import annotations

import gc
import os
import select
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import IO

from inboxwatch.core.ports import FolderScan
from inboxwatch.errors import InboxwatchError
from inboxwatch.imap.codec import encode_scan
from inboxwatch.imap.login import Login, Secret
from inboxwatch.imap.source import ImapSource
from inboxwatch.imap.worker import read_frame, write_frame, write_raw


def _job_within(stdin: IO[bytes], seconds: float) -> bool:
    """Whether the parent says something (a job, or end of jobs) within `seconds`."""
    ready, _, _ = select.select([stdin], [], [], seconds)
    return bool(ready)


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The worker's side: log in, then answer each job until stdin closes."""
    # The records of a job are long-lived and hold no cycles: the collector would only
    # re-walk the growing heap (as core.scan.collector_paused explains); the process is short-lived.
    gc.disable()
    hello = read_frame(stdin)
    if hello is None:
        return 1
    fields, timeout, secret, bearer, idle = hello
    account = Login(**fields, timeout=timedelta(seconds=timeout))
    try:
        source = ImapSource(account, Secret(secret, bearer), worker=False)
    except InboxwatchError as exc:
        write_frame(stdout, ("error", f"login failed: {exc}"))
        return 1
    try:
        while _job_within(stdin, idle) and (job := read_frame(stdin)) is not None:
            folder, uidvalidity, uid_runs, since = job
            uids = [uid for first, last in uid_runs for uid in range(first, last + 1)]
            parts: list[bytes] = []
            try:
                # Encoded batch by batch: ~300 bytes a record held instead of ~1.4 KB. Sent
                # only at the end: the parent is busy reading its own part until then, and a
                # pipe holds 64 KB, so a worker writing as it goes would wait on it.
                source.fetch_uids(
                    *(folder, uidvalidity, uids, datetime.fromisoformat(since)),
                    _encoding(parts),
                )
            except InboxwatchError as exc:
                write_frame(stdout, ("error", str(exc)))
                continue
            write_frame(stdout, ("ok", len(parts)))
            while parts:  # each part a frame of its own: no second copy of them all
                write_raw(stdout, parts.pop(0))
    finally:
        source.close()
    return 0


def _encoding(parts: list[bytes]) -> Callable[[FolderScan], None]:
    def encode(scan: FolderScan) -> None:
        parts.append(encode_scan(scan.messages, scan.failures))

    return encode


if __name__ == "__main__":
    frames = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames may reach the parent's pipe
    # Unbuffered: select() in _job_within must not miss a frame already read into a buffer.
    with open(sys.stdin.fileno(), "rb", buffering=0, closefd=False) as jobs:
        code = serve(jobs, frames)
    frames.flush()
    os._exit(code)  # logged out, frames flushed: skip the interpreter's teardown (~0.1 s)
