"""The bench's service measures (bench/run.py runs each in its own process): a running
service's polls, `run --once` from cron, and the mailbox changes they are timed after."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

from bench.mailgen import OWNER

# `bench/run.py --compress`: the server offers COMPRESS=DEFLATE and inboxwatch asks it.
COMPRESS = "INBOXWATCH_BENCH_COMPRESS"


def bench_account(port: int, password: str, lookback: str) -> Any:
    from inboxwatch.config import Account

    return Account(
        compress=os.environ.get(COMPRESS) == "1",
        name="bench",
        host="127.0.0.1",
        port=port,
        security="plain",
        username="bench",
        password=password,
        addresses=[OWNER],
        lookback=lookback,
    )


def _poller(port: int, password: str, state: str, **options: Any) -> tuple[Any, Any]:
    """A Poller on the bench account (400-day lookback) and its SQLite state, as `inboxwatch
    run` builds them; `options` as Poller takes them (memory, keep_report)."""
    from inboxwatch.config import Settings
    from inboxwatch.delivery.smtp import StdoutSender
    from inboxwatch.service.poller import Poller
    from inboxwatch.store.sqlite import SqliteStore

    settings = Settings(
        accounts=[bench_account(port, password, "400d").model_dump()], state={"path": state}
    )
    store = SqliteStore(Path(state))
    return Poller(settings, store, StdoutSender(), **options), store


Change = Callable[[int, str, datetime, Path, int], None]


def _timed(made: tuple[Any, Any], now: datetime, change: Callable[[], None] | None = None,
           warm: bool = True) -> tuple[int, float]:  # fmt: skip
    """On `made` (a poller and its state, as `inboxwatch run` builds them): a poll to warm
    up and what the service does once its line is out (`warm`), `change`, then the timed
    poll (given the report of the first, as the service keeps it)."""
    poller, store = made
    try:
        if warm:
            poller.poll(now)
            poller.settle()  # as the service does after each poll's line (service.scheduler)
        if change is not None:
            change()
        started = time.perf_counter()
        result = poller.poll(now)
        return result.fetched, time.perf_counter() - started
    finally:
        poller.close()
        store.close()


def _service_poll(
    port: int,
    password: str,
    now: datetime,
    state: str,
    change: int | None,
    how: Change | None = None,
) -> tuple[int, float]:
    """A service keeping its memory, as replicas do (`inboxwatch run` is lean otherwise:
    service.lean), timed after `how` (`change_mailbox` unless given) when `change` is a
    round."""
    from inboxwatch.service.sync import MemoryCache

    made = _poller(port, password, state, memory=MemoryCache())
    if change is None:
        return _timed(made, now)
    return _timed(
        made, now, lambda: (how or change_mailbox)(port, password, now, Path(state), change)
    )


def m_idle(port: int, password: str, now: datetime, state: str) -> tuple[int, float]:
    return _service_poll(port, password, now, state, None)


def m_change(port: int, password: str, now: datetime, state: str) -> tuple[int, float]:
    return _service_poll(port, password, now, state, int(Path(state + ".round").read_text()))


def m_gone(port: int, password: str, now: datetime, state: str) -> tuple[int, float]:
    """A running service's poll after the owner archived a few messages (`archive`)."""
    round_ = int(Path(state + ".round").read_text())
    return _service_poll(port, password, now, state, round_, how=archive)


def m_seen(port: int, password: str, now: datetime, state: str) -> tuple[int, float]:
    """A running service's poll after 10 new messages on subjects the mailbox has seen."""
    round_ = int(Path(state + ".round").read_text())
    return _service_poll(port, password, now, state, round_, how=seen_subjects)


def _fresh(state: str) -> str:
    """`state`, its -wal and -shm files gone."""
    for path in Path(state).parent.glob(Path(state).name + "*"):
        path.unlink()
    return state


def _lean(port: int, password: str, state: str) -> tuple[Any, Any]:
    """A lean service's poller (`inboxwatch run`'s: service.lean) and its state."""
    from inboxwatch.service.sync import MemoryCache

    return _poller(port, password, state, memory=MemoryCache(), keep_report=True, lean=True)


def m_first(port: int, password: str, now: datetime, state: str) -> tuple[int, float]:
    """A lean service's first poll on a new state (`inboxwatch run`'s: service.lean), timed
    to its report; what it does once the poll's line is out is not."""
    return _timed(_lean(port, password, _fresh(state + ".first")), now, warm=False)


def m_lean_idle(port: int, password: str, now: datetime, state: str) -> tuple[int, float]:
    """A lean service on a new state: its first poll, what it does once that poll's line
    is out (the report kept, the memory dropped), then a poll with nothing new, timed;
    the process's resident set after it is what such a service holds between polls."""
    return _timed(_lean(port, password, _fresh(state + ".lean")), now)


def m_lean_change(port: int, password: str, now: datetime, state: str) -> tuple[int, float]:
    """A lean service restarted on the state `m_lean_idle` left (its first poll carries
    the kept report), timed on its poll after 10 new messages and 5 flag changes."""
    lean = state + ".lean"
    round_ = int(Path(state + ".round").read_text()) + 100  # other messages' flags
    change = lambda: change_mailbox(port, password, now, Path(lean), round_)  # noqa: E731
    return _timed(_lean(port, password, lean), now, change)


def m_start(port: int, password: str, now: datetime, state: str) -> int:
    """What `m_poll` does before it polls: imports, settings, the state opened."""
    _, store = _poller(port, password, state, keep_report=True)
    store.close()
    return 0


def m_poll(port: int, password: str, now: datetime, state: str) -> int:
    """A poll in a fresh process: `inboxwatch run --once` from cron."""
    poller, store = _poller(port, password, state, keep_report=True)
    try:
        return int(poller.poll(now).fetched)
    finally:
        poller.close()  # as `run --once` does: its session logs out
        store.close()


def _new_mail(sender: str, subject: str, now: datetime) -> bytes:
    """A small new message; not the test suite's helper, which needs pytest (the bench runs
    in a venv holding only the package)."""
    from email.message import EmailMessage
    from email.utils import format_datetime, make_msgid

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, OWNER, subject
    message["Date"], message["Message-ID"] = format_datetime(now), make_msgid("bench")
    message.set_content("A new message for the poll-change measure.")
    return message.as_bytes()


def _login(port: int, password: str) -> Any:
    """The bench account's session on the bench's Dovecot, to change its mailbox with."""
    from imapclient import IMAPClient

    client = IMAPClient("127.0.0.1", port=port, ssl=False)
    client.login("bench", password)
    return client


def one_new_message(port: int, password: str, now: datetime) -> None:
    """The cron-change measure's change: one new message in INBOX."""
    client = _login(port, password)
    text = _new_mail("One <one@x.example>", f"One {time.time()}", now)
    client.append("INBOX", text, msg_time=now - timedelta(minutes=1))
    client.logout()


def archive(port: int, password: str, now: datetime, state: Path, round_: int) -> None:
    """5 messages of INBOX moved to Archive (a folder not watched): they are gone from
    what the service reads, as when the owner files mail away on another device."""
    client = _login(port, password)
    if not client.folder_exists("Archive"):
        client.create_folder("Archive")
    client.select_folder("INBOX")
    uids = client.search(["ALL"])
    start = (round_ + 1) * 997 % max(len(uids) - 5, 1)  # spread over the mailbox's age
    client.move(uids[start : start + 5], "Archive")
    client.logout()


def seen_subjects(port: int, password: str, now: datetime, state: Path, round_: int) -> None:
    """10 new messages in INBOX without linking headers, each on the subject of an older
    message there, half from its sender and half from someone new: most new mail is
    about something the mailbox has seen ("Invoice"), which poll-change's does not show."""
    from email.utils import parseaddr

    client = _login(port, password)
    client.select_folder("INBOX")
    uids = client.search(["ALL"])
    picked = [uids[(round_ * 10 + n) * 3541 % len(uids)] for n in range(10)]
    fields = b"BODY[HEADER.FIELDS (FROM SUBJECT)]"
    for n, data in enumerate(
        client.fetch(picked, [fields.replace(b"BODY", b"BODY.PEEK")]).values()
    ):
        header = BytesParser(policy=default).parsebytes(data[fields], headersonly=True)
        sender = parseaddr(str(header["From"]))[1] if n % 2 else f"seen{n}@x.example"
        text = _new_mail(f"Seen <{sender}>", str(header["Subject"]), now)
        client.append("INBOX", text, msg_time=now - timedelta(minutes=n + 1))
    client.logout()


def change_mailbox(port: int, password: str, now: datetime, state: Path, round_: int) -> None:
    """Note the QRESYNC state, then 10 new messages and 5 flag changes in INBOX."""
    client = _login(port, password)
    client.enable("CONDSTORE")
    known = {}
    for folder in ("INBOX", "Sent"):
        info = client.select_folder(folder, readonly=True)
        known[folder] = [info[b"UIDVALIDITY"], info[b"HIGHESTMODSEQ"], info[b"UIDNEXT"]]
    Path(f"{state}.qresync").write_text(json.dumps(known))
    for n in range(10):
        client.append(
            "INBOX",
            _new_mail(f"New {n} <new{n}@x.example>", f"New {round_}.{n}", now),
            msg_time=now - timedelta(minutes=n + 1),
        )
    client.select_folder("INBOX")
    uids = client.search(["ALL"])
    client.add_flags(uids[round_ * 5 : (round_ + 1) * 5], [b"\\Flagged"])
    client.logout()
