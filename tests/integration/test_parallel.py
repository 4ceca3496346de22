"""Issue 21 item 4 / issue 23 item 3: accounts polled side by side (`max_parallel`),
never more connections to one server at once than `max_per_server`, against the real
Dovecot through a proxy that counts the sessions open at once."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from inboxwatch.cli.check import run_check
from inboxwatch.config import Account, Settings
from inboxwatch.imap import headerfetch
from inboxwatch.imap.login import Secret
from inboxwatch.imap.slots import ServerSlots
from inboxwatch.imap.source import ImapSource
from inboxwatch.service import sessions
from inboxwatch.service.poller import Poller
from inboxwatch.service.sync import MemoryCache
from inboxwatch.store.sqlite import SqliteStore
from tests.conftest import OWNER, Mailbox, mail
from tests.proxy import LoopbackServer

H = timedelta(hours=1)
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


class CountingProxy(LoopbackServer):
    """Forwards to Dovecot, each server chunk `delay` late (a slower link, so sessions
    overlap), and counts the sessions signed in at once: from the client's LOGIN (or
    AUTHENTICATE) to its LOGOUT, which it sends before giving its slot back. Counting
    from the TCP accept raced: a new connection could be counted before this proxy's
    other thread had read the LOGOUT the client sent before it connected (a peak of one
    over, about one run in eight); the LOGIN comes after a greeting held back `delay`."""

    def __init__(self, port: int, delay: float = 0.02) -> None:
        super().__init__()
        self.target, self.delay = port, delay
        self.open = self.peak = self.sessions = 0
        self.lock = threading.Lock()

    def _step(self, by: int) -> None:
        with self.lock:
            self.open += by
            self.peak = max(self.peak, self.open)
            self.sessions += max(by, 0)

    def handle(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target))
        state = {"started": False, "ended": False}
        lock = threading.Lock()

        def step(start: bool) -> None:
            with lock:
                if start and not state["started"]:
                    state["started"] = True
                    self._step(1)
                elif not start and state["started"] and not state["ended"]:
                    state["ended"] = True
                    self._step(-1)

        def pipe(src: socket.socket, dst: socket.socket, client: bool) -> None:
            try:
                while chunk := src.recv(65536):
                    said = chunk.upper()
                    if client and (b" LOGIN " in said or b" AUTHENTICATE " in said):
                        step(True)
                    if client and b" LOGOUT\r\n" in said:
                        step(False)
                    if not client:
                        threading.Event().wait(self.delay)
                    dst.sendall(chunk)
            except OSError:
                pass
            finally:
                step(False)
                for sock in (src, dst):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

        for args in ((conn, upstream, True), (upstream, conn, False)):
            threading.Thread(target=pipe, args=args, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.peak = self.open
            self.sessions = 0


def boxes(dovecot, count: int, prefix: str) -> list[Mailbox]:
    """`count` users, the n-th with n+1 overdue questions and one message sent."""
    made = []
    for n in range(count):
        box = Mailbox(dovecot, f"{prefix}{n}")
        box.create("Sent")
        box.add("Sent", mail(OWNER, "x@y.example"), T0 - 72 * H)
        for q in range(n + 1):
            box.add("INBOX", mail(f"C <c{q}@{prefix}{n}.example>", subject=f"Q{q}"), T0 - 40 * H)
        made.append(box)
    return made


def settings(dovecot, users, port, tmp_path, parallel, per_server) -> Settings:
    return Settings(
        accounts=[
            {
                "name": user,
                "host": "127.0.0.1",
                "port": port,
                "security": "plain",
                "username": user,
                "password": dovecot.password,
                "addresses": [OWNER],
            }
            for user in users
        ],
        digest={"to": [OWNER], "schedule": "0 8 * * *"},
        state={"path": str(tmp_path / "state.db")},
        max_parallel=parallel,
        max_per_server=per_server,
    )


@contextlib.contextmanager
def running(settings_: Settings, db: Path) -> Iterator[Poller]:
    """A service's poller on its own SQLite state (one Poller, as `inboxwatch run` keeps
    it); stopped, and its store closed, at the end."""
    store = SqliteStore(db)
    try:
        poller = Poller(settings_, store, _Quiet(), memory=MemoryCache())
        try:
            yield poller
        finally:
            poller.close()
    finally:
        store.close()


def polled(settings_: Settings, db: Path, times):
    """A service's polls at `times`."""
    with running(settings_, db) as poller:
        return [poller.poll(now) for now in times]


class _Quiet:
    def send(self, msg) -> None:
        pass


def overdue(report) -> list[tuple[str, str]]:
    return sorted((f.account, f.subject) for f in report.overdue)


@pytest.mark.dovecot
def test_accounts_are_polled_side_by_side_within_the_server_cap(dovecot, tmp_path):
    made = boxes(dovecot, 6, "par")
    users = [b.user for b in made]
    serial = settings(dovecot, users, dovecot.port, tmp_path, 1, 3)
    [alone] = polled(serial, tmp_path / "serial.db", [T0])
    with CountingProxy(dovecot.port) as proxy:
        config = settings(dovecot, users, proxy.port, tmp_path, 4, 3)
        with running(config, tmp_path / "state.db") as poller:
            first = poller.poll(T0)
            first_peak = proxy.peak
            proxy.reset()
            steady = poller.poll(T0 + H)  # nothing changed: the quick check only
            steady_peak = proxy.peak
            made[-1].add("INBOX", mail("New <new@x.example>", subject="New"), T0 - 30 * H)
            proxy.reset()
            changed = poller.poll(T0 + 2 * H)
            changed_peak = proxy.peak
        closed = proxy.open
    assert [a.name for a in first.report.accounts] == users  # the config's order
    assert len(first.report.overdue) == 21 and not first.report.errors
    assert overdue(first.report) == overdue(alone.report)
    assert [a.name for a in alone.report.accounts] == users
    assert 2 <= first_peak <= 3, first_peak  # side by side, and never past the cap
    assert steady.fetched == 0 and steady_peak <= 3
    assert changed.fetched == 1 and len(changed.report.overdue) == 22 and changed_peak <= 3
    assert closed == 0  # the service's stop logs out the sessions it kept
    for box in made:
        box.close()


@pytest.mark.dovecot
def test_a_changed_account_holding_the_only_slot_does_not_stall_the_poll(dovecot, tmp_path):
    """Kept sessions hold their server's slots: with one slot and fewer threads than
    accounts, an account that needs the slot closes the idle session holding it, or the
    threads would wait for ever."""
    made = boxes(dovecot, 4, "one")
    config = settings(dovecot, [b.user for b in made], dovecot.port, tmp_path, 2, 1)
    results = []
    with running(config, tmp_path / "state.db") as poller:
        results.append(poller.poll(T0))
        made[-1].add("INBOX", mail("New <new@x.example>", subject="New"), T0 - 30 * H)
        # A daemon thread: a stalled poll fails this test and does not hold pytest open.
        worker = threading.Thread(target=lambda: results.append(poller.poll(T0 + H)))
        worker.daemon = True
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "the poll stalled waiting for a server slot"
    assert results[1].fetched == 1 and len(results[1].report.overdue) == 11
    for box in made:
        box.close()


@pytest.mark.dovecot
def test_a_big_folders_second_connection_waits_for_no_slot(dovecot, tmp_path, monkeypatch):
    """A big folder's second connection (imap.worker) is opened only when the server's cap
    leaves room; otherwise the session reads alone, and nothing is lost either way."""
    monkeypatch.setattr(headerfetch, "PARALLEL_MIN", 10)
    made = []
    for n in range(3):
        box = Mailbox(dovecot, f"big{n}")
        box.create("Sent")
        box.add("Sent", mail(OWNER, "x@y.example"), T0 - 72 * H)
        box.bulk(
            "INBOX",
            [(mail(f"C <c{q}@x.example>", subject=f"Q{q}"), T0 - 40 * H) for q in range(40)],
        )
        made.append(box)
    users = [b.user for b in made]
    with CountingProxy(dovecot.port, delay=0.005) as proxy:
        tight = settings(dovecot, users, proxy.port, tmp_path, 3, 2)
        [both] = polled(tight, tmp_path / "state.db", [T0])
        tight_peak = proxy.peak
        proxy.reset()
        # One account, and room for its second connection: it is used.
        roomy = settings(dovecot, users[:1], proxy.port, tmp_path, 3, 2)
        [alone] = polled(roomy, tmp_path / "alone.db", [T0])
    assert proxy.sessions == 2 and len(alone.report.overdue) == 40
    assert tight_peak <= 2
    assert len(both.report.overdue) == 120 and not both.report.errors
    for box in made:
        box.close()


@pytest.mark.dovecot
def test_a_steady_poll_logs_in_to_nothing_and_a_dropped_session_is_replaced(
    dovecot, tmp_path, monkeypatch
):
    """A running service keeps its sessions: a poll with nothing new is one EXAMINE a
    folder on them, no login. A session the server ended meanwhile (here `doveadm kick`)
    costs a new login, not a failed poll: in the quick check, and before a read."""
    made = boxes(dovecot, 3, "kept")
    with CountingProxy(dovecot.port, delay=0) as proxy:
        config = settings(dovecot, [b.user for b in made], proxy.port, tmp_path, 4, 10)
        with running(config, tmp_path / "state.db") as poller:
            first = poller.poll(T0)
            proxy.reset()
            steady = poller.poll(T0 + H)
            logins = proxy.sessions
            dovecot.doveadm("kick", made[0].user)
            made[0] = Mailbox(dovecot, made[0].user)  # the kick ended the test's own too
            made[0].add("INBOX", mail("New <new@x.example>", subject="New"), T0 - 30 * H)
            after_kick = poller.poll(T0 + 2 * H)  # the quick check finds it dropped
            dovecot.doveadm("kick", made[1].user)
            made[1] = Mailbox(dovecot, made[1].user)
            monkeypatch.setattr(sessions, "VERIFY_AFTER", 0.0)
            poller.previous = None  # a read with no quick check before it (a digest due)
            read = poller.poll(T0 + 3 * H)
    assert len(first.report.overdue) == 6 and steady.fetched == 0 and logins == 0
    assert not after_kick.report.errors and after_kick.fetched == 1
    assert not read.report.errors and len(read.report.overdue) == 7
    for box in made:
        box.close()


def test_server_slots_count_per_host_and_a_spare_never_waits():
    slots = ServerSlots(2)
    first = slots.take("imap.example.com")
    second = slots.spare("IMAP.example.com")  # hosts compare without case
    assert first is not None and second is not None
    assert slots.spare("imap.example.com") is None  # full: no wait, no slot
    assert slots.take("imap.example.com", timeout=0.01) is None
    assert slots.spare("other.example.com") is not None  # another server, its own cap
    second()
    second()  # a second release gives back nothing more
    third = slots.spare("imap.example.com")
    assert third is not None and slots.spare("imap.example.com") is None
    assert slots.peak["imap.example.com"] == 2


@pytest.mark.dovecot
def test_a_session_keeps_its_connection_alive_while_it_idles(dovecot, mailbox):
    """TCP keepalive: a NAT or firewall does not drop a kept session's idle connection,
    and a peer that vanished fails the next command at once, not after the read timeout."""
    account = Account(
        name="work",
        host="127.0.0.1",
        port=dovecot.port,
        security="plain",
        username=mailbox.user,
        addresses=[OWNER],
    )
    source = ImapSource(account, Secret(dovecot.password))
    try:
        sock = source.client.socket()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
    finally:
        source.close()


@pytest.mark.dovecot
def test_with_more_accounts_than_slots_all_but_one_stay_logged_in(dovecot, tmp_path):
    """Four accounts, three slots: a poll goes through them in order, so the session to
    close for a slot is the one given back last (about one login in three accounts' turns,
    as few as any choice allows in a cyclic order). Closing the oldest instead would close
    each session just before its turn, and every steady poll would log in four times."""
    made = boxes(dovecot, 4, "mru")
    with CountingProxy(dovecot.port, delay=0) as proxy:
        config = settings(dovecot, [b.user for b in made], proxy.port, tmp_path, 1, 3)
        with running(config, tmp_path / "state.db") as poller:
            poller.poll(T0)
            logins = []
            for hour in (1, 2, 3):
                proxy.reset()
                assert poller.poll(T0 + hour * H).fetched == 0
                logins.append(proxy.sessions)
            peak = proxy.peak
    assert sum(logins) <= 4 and peak <= 3, logins
    for box in made:
        box.close()


@pytest.mark.dovecot
def test_check_logs_in_to_accounts_side_by_side_and_reports_in_order(dovecot, tmp_path):
    made = boxes(dovecot, 5, "chk")
    users = [b.user for b in made]
    with CountingProxy(dovecot.port) as proxy:
        config = settings(dovecot, users, proxy.port, tmp_path, 4, 3)
        broken = config.accounts[2].model_copy(update={"password": SecretStr("wrong")})
        config.accounts[2] = broken
        lines: list[str] = []
        code = run_check(config, None, lines.append)
    accounts = [line for line in lines if line.startswith(("ok account", "FAILED account"))]
    assert [line.split(":")[0].split()[-1] for line in accounts] == users  # config order
    assert accounts[2].startswith(f"FAILED account {users[2]}: login") and code == 4
    assert 2 <= proxy.peak <= 3
    # Five accounts on one server, three connections: the service cannot keep them all.
    assert lines[-1].startswith("note: 5 accounts on 127.0.0.1 share max_per_server = 3")
    for box in made:
        box.close()


def test_stopping_logs_out_the_kept_sessions_side_by_side():
    """A LOGOUT is a round trip: 300 kept sessions logged out one after the other on a
    slow link would outlast a container's stop grace. Each fake session's LOGOUT waits
    until three are under way, so one after the other it would time out."""
    together = threading.Barrier(3, timeout=10)
    closed: list[str] = []

    class Session:
        def __init__(self, name: str) -> None:
            self.name = name

        def rest(self) -> None:
            pass

        def close(self) -> None:
            together.wait()
            closed.append(self.name)

    accounts = {n: Account(name=n, host="h", username=n, addresses=[OWNER]) for n in "abc"}
    kept = sessions.Sessions(accounts, Path("unused"), ServerSlots(3))
    slots = ServerSlots(3)
    for name in accounts:
        release = slots.take("h")
        assert release is not None
        kept._open[id(made := Session(name))] = release
        kept.done(name, made, reusable=True)  # type: ignore[arg-type]
    kept.close(parallel=3)
    assert sorted(closed) == ["a", "b", "c"] and slots.spare("h") is not None


@pytest.mark.dovecot
def test_one_server_named_in_two_cases_shares_its_cap_and_its_kept_sessions(dovecot, tmp_path):
    """`LOCALHOST` and `localhost` are one server (RFC 4343): one slot between them, so
    the second account must close the first's kept session to get it; comparing names as
    written found none to close and waited for ever. `check` counts them as one too."""
    from inboxwatch.cli.check import crowded

    made = boxes(dovecot, 2, "case")
    config = settings(dovecot, [b.user for b in made], dovecot.port, tmp_path, 1, 1)
    for account, host in zip(config.accounts, ("localhost", "LOCALHOST"), strict=True):
        account.host = host
    assert crowded(config.accounts, 1) == {"localhost": 2}
    results = []
    with running(config, tmp_path / "state.db") as poller:
        # A daemon thread: a stalled poll fails this test and does not hold pytest open.
        worker = threading.Thread(target=lambda: results.append(poller.poll(T0)), daemon=True)
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "the poll stalled waiting for a server slot"
    assert len(results[0].report.overdue) == 3 and not results[0].report.errors
    for box in made:
        box.close()
