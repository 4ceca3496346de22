"""Issue 23 item 2: three `inboxwatch run` replicas (processes) on one PostgreSQL and one
Dovecot with 20 accounts. Every account is polled and none by two replicas at once (each
replica's JSON log says what each poll read); one replica is killed (-9) mid-poll, as
it sends a digest it claimed, and the others take its accounts over within the lease
period and send that digest: exactly one per group and period across all replicas."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import OWNER
from tests.integration.test_parallel import CountingProxy, boxes
from tests.smtp import smtp_server

pytestmark = pytest.mark.dovecot
LEASE = 3.0  # seconds: `[state] lease`
LEAD, TEAM = "lead@example.com", "team-lead@example.com"


def write(tmp_path: Path, users: list[str], password: str, imap: int, smtp: int, url: str) -> Path:
    hour = (datetime.now(UTC) - timedelta(hours=3)).hour  # due now, and far from its next
    accounts = "".join(
        f'[[accounts]]\nname = "{u}"\nhost = "127.0.0.1"\nport = {imap}\nsecurity = "plain"\n'
        f'username = "{u}"\npassword = "{password}"\naddresses = ["{OWNER}"]\n'
        for u in users
    )
    team = ", ".join(f'"{u}"' for u in users[:5])
    path = tmp_path / "config.toml"
    path.touch(mode=0o600)
    path.write_text(
        f"max_parallel = 2\n{accounts}"
        f'[digest]\nto = ["{LEAD}"]\nschedule = "0 {hour} * * *"\ntimezone = "UTC"\n'
        f'[[digests]]\naccounts = [{team}]\nto = ["{TEAM}"]\nschedule = "0 {hour} * * *"\n'
        f'timezone = "UTC"\n[smtp]\nhost = "127.0.0.1"\nport = {smtp}\nsecurity = "plain"\n'
        f'retries = 0\n[service]\npoll_interval = "5s"\n[state]\nurl = "{url}"\n'
        f'lease = "{LEASE:.0f}s"\n'
    )
    return path


@dataclass
class Replica:
    proc: subprocess.Popen[str]
    log: Path
    polls: list[tuple[float, float | None, frozenset[str]]] = field(default_factory=list)

    def lines(self) -> list[dict[str, str]]:
        text = self.log.read_text() if self.log.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def read(self, killed_at: float | None = None) -> None:
        """Its polls: [start, end] and the accounts each read (a poll's end is its
        `poll:` line; one cut by the kill ends at the kill)."""
        self.polls, names = [], frozenset[str]()
        for entry in self.lines():
            at = datetime.fromisoformat(entry["time"]).timestamp()
            message = entry["message"]
            if message.startswith("leases: polling"):
                listed = message.split(": ", 2)[2]
                if listed != "as before":
                    names = frozenset(listed.split(", ")) if listed != "none" else frozenset()
                self.polls.append((at, None, names))
            elif message.startswith("poll:") and self.polls and self.polls[-1][1] is None:
                self.polls[-1] = (self.polls[-1][0], at, self.polls[-1][2])
        if killed_at is not None and self.polls and self.polls[-1][1] is None:
            self.polls[-1] = (self.polls[-1][0], killed_at, self.polls[-1][2])
        assert all(end is not None for _, end, _ in self.polls[:-1])

    def pending(self) -> str | None:
        """The recipient of a digest this replica claimed and has not sent (yet)."""
        sending = None
        for entry in self.lines():
            message = entry["message"]
            if "claimed; sending to " in message:
                sending = message.rsplit("sending to ", 1)[1]
            elif sending is not None and message.endswith(f"sent to {sending}"):
                sending = None
        return sending

    def claimed(self, to: str) -> float | None:
        """When this replica claimed the digest to `to`."""
        return next(
            (
                datetime.fromisoformat(e["time"]).timestamp()
                for e in self.lines()
                if e["message"].endswith(f"claimed; sending to {to}")
            ),
            None,
        )


def start(config: Path, log: Path) -> Replica:
    out = log.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inboxwatch",
            "--log-format",
            "json",
            "run",
            "--config",
            str(config),
        ],
        stderr=out,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    return Replica(proc, log)


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_three_replicas_share_the_accounts_and_send_each_digest_once(dovecot, postgres, tmp_path):
    made = boxes(dovecot, 20, "rep")
    users = [b.user for b in made]
    url = postgres.new_database()
    with (
        CountingProxy(dovecot.port, delay=0.01) as proxy,
        smtp_server(None, stall_first=30) as (smtp, smtp_port),
    ):
        config = write(tmp_path, users, dovecot.password, proxy.port, smtp_port, url)
        replicas = [start(config, tmp_path / f"replica{n}.log") for n in range(3)]
        try:
            wait_for(lambda: smtp.attempts >= 1, 60, "a digest's send")
            # The stalled sender: the one claim left unsent (another's completes at once).
            wait_for(lambda: sum(r.pending() is not None for r in replicas) == 1, 10, "one")
            [victim] = [r for r in replicas if r.pending() is not None]
            stalled = victim.pending()
            victim.proc.send_signal(signal.SIGKILL)  # mid-poll: its send waits on DATA
            killed_at = time.time()
            victim.proc.wait(10)
            wait_for(lambda: len(smtp.received) >= 2, 30, "both digests")
            time.sleep(2 * LEASE)  # long enough for a digest sent twice to show
        finally:
            for replica in replicas:
                if replica.proc.poll() is None:
                    replica.proc.send_signal(signal.SIGTERM)
            for replica in replicas:
                replica.proc.wait(20)
    for replica in replicas:
        replica.read(killed_at if replica is victim else None)
        assert "Traceback" not in replica.log.read_text()
    others = [r for r in replicas if r is not victim]
    # Exactly one digest per group, the stalled one sent by another replica.
    assert sorted(str(m["To"]) for m in smtp.received) == [LEAD, TEAM]
    # ... and taken over only once the claim was a lease period old (its sender dead).
    [retaken] = [t for r in others if (t := r.claimed(stalled)) is not None]
    # (less a margin for the victim's log line, written just after its claim)
    late = retaken - victim.claimed(stalled)
    assert late >= LEASE - 0.25, late
    # Every account polled; none by two replicas at once.
    assert set().union(*(names for r in replicas for _, _, names in r.polls)) == set(users)
    polls = [(r, p) for r in replicas for p in r.polls]
    for one, (a_start, a_end, a_names) in polls:
        for other, (b_start, b_end, b_names) in polls:
            if one is not other and a_start < b_end and b_start < a_end:
                assert not a_names & b_names, (a_names & b_names, a_start, b_start)
    # The victim's accounts taken over within one lease period of the kill.
    lost = victim.polls[-1][2]
    assert lost, "the victim held no account"
    taken = [
        min(
            (s for r in others for s, _, names in r.polls if s > killed_at and name in names),
            default=float("inf"),
        )
        for name in lost
    ]
    assert max(taken) - killed_at <= LEASE, max(taken) - killed_at
    for box in made:
        box.close()


def test_leases_are_shared_fairly_as_replicas_join_and_vanish(postgres):
    """store.leases alone: a replica that joins gets its share from the one that held
    everything (at that one's next take), and a vanished one's accounts end with its
    lease rows, never taken while they last."""
    from inboxwatch.store.leases import Leases
    from inboxwatch.store.postgres import PostgresStore

    url = postgres.new_database()
    PostgresStore(url).close()  # the tables
    names = [f"a{n:02}" for n in range(20)]
    first, second = Leases(url, "first", 1.5), Leases(url, "second", 1.5)
    try:
        assert len(first.take(names).mine) == 20
        joined = second.take(names)
        assert joined.mine == frozenset() and joined.share == 10
        looked = first.look(names)
        assert len(looked.mine) == 20 and looked.share == 10  # over its share: a wake
        assert len(first.take(names).mine) == 10  # gave back ten
        taken = second.take(names).mine
        assert len(taken) == 10 and not taken & first.take(names).mine
        assert second.take(names).mine == taken  # renewing keeps the same
        # `second` vanishes (no more renewals): its rows last two thirds of the lease.
        assert len(first.take(names).mine) == 10
        time.sleep(1.5 * 2 / 3 + 0.1)
        assert len(first.take(names).mine) == 20
        # The database drops the leases' connection: one call fails as one line, the next
        # connects again (the poll that met it failed; the renewals go on).
        import psycopg

        from inboxwatch.errors import StateError

        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first.conn.info.backend_pid,))
        with pytest.raises(StateError, match=r"state.url postgresql://inboxwatch:\*\*\*\*@"):
            first.take(names)
        assert len(first.take(names).mine) == 20
    finally:
        first.close()
        second.conn.close()


def test_a_digest_shows_another_replicas_account_as_of_now(dovecot, postgres, tmp_path):
    """A replica whose polls found nothing new only notes the time on its accounts'
    stored reports; the replica that composes the digest moves them forward in time, so
    a thread that crossed its window since is overdue in the digest, not still waiting."""
    from datetime import UTC, datetime, timedelta

    from inboxwatch.config import State
    from inboxwatch.periods import period_key
    from inboxwatch.service.poller import Poller
    from inboxwatch.service.replicas import Replica
    from inboxwatch.service.sync import MemoryCache
    from inboxwatch.store.beside import open_store
    from inboxwatch.store.leases import Leases
    from tests.conftest import mail
    from tests.integration.test_parallel import settings
    from tests.integration.test_service import Recorder

    t0, hour = datetime(2026, 11, 24, 9, 0, tzinfo=UTC), timedelta(hours=1)
    made = boxes(dovecot, 2, "adv")
    made[0].add("INBOX", mail("Late <late@x.example>", subject="Crosses"), t0 - 20 * hour)
    url = postgres.new_database()
    config = settings(dovecot, [b.user for b in made], dovecot.port, tmp_path, 2, 10)
    digest = config.digest.model_copy(update={"schedule": "0 14 * * *", "timezone": "UTC"})
    config = config.model_copy(update={"state": State(url=url), "digest": digest})
    names = [b.user for b in made]
    stores = [open_store(config.state) for _ in range(2)]
    leases = [Leases(url, f"r{n}", 600) for n in range(2)]
    for each in leases:
        each.look(names)  # both alive before either takes: one account each
    sent = Recorder()
    replicas = [
        Replica(le, names, st, config.service.poll_interval)
        for le, st in zip(leases, stores, strict=True)
    ]
    pollers = [
        Poller(config, st, sent, memory=MemoryCache(), replica=r)
        for st, r in zip(stores, replicas, strict=True)
    ]
    yesterday = period_key("0 14 * * *", "UTC", t0)
    stores[0].mark_digest(yesterday, "sent", "<y@x>", t0)  # only today's is owed
    try:
        for poller in pollers:
            poller.poll(t0)
        [reader] = [p for p in pollers if made[0].user in p.accounts]
        other = pollers[1 - pollers.index(reader)]
        assert reader.poll(t0 + hour).fetched == 0  # nothing new: its part only touched
        late = other.poll(t0 + 5 * hour + 35 * timedelta(minutes=1))  # the digest is due
    finally:
        for poller, lease, store in zip(pollers, leases, stores, strict=True):
            poller.close()
            lease.close()
            store.close()
    assert late.digest is not None and len(sent.sent) == 1
    text = sent.sent[0].get_body(("plain",)).get_content()
    # "Crosses" overdue since 13:00 though its part was read at 10:00: 4 threads, not 3,
    # each wait as of the digest's time.
    assert text.startswith("4 conversations waiting > 24h"), text[:80]
    assert "Late <late@x.example> — waiting 1 day 1 hour" in text
    for box in made:
        box.close()


def test_a_lease_lost_during_the_poll_writes_nothing_of_that_account(
    dovecot, postgres, tmp_path, monkeypatch
):
    """Renewals that failed for longer than a lease row lasts (the renewal thread then
    drops the account from `mine`): another replica may be polling it, so this poll
    commits none of its cache, records no poll and keeps no report of it."""
    from datetime import UTC, datetime

    from inboxwatch.config import State
    from inboxwatch.service import poller as poller_module
    from inboxwatch.service.poller import Poller
    from inboxwatch.service.replicas import Replica
    from inboxwatch.service.sync import MemoryCache
    from inboxwatch.store.beside import open_store
    from inboxwatch.store.leases import Leases
    from tests.integration.test_parallel import settings
    from tests.integration.test_service import Recorder

    made = boxes(dovecot, 2, "lost")
    names = [b.user for b in made]
    url = postgres.new_database()
    config = settings(dovecot, names, dovecot.port, tmp_path, 2, 10)
    config = config.model_copy(update={"state": State(url=url)})
    store = open_store(config.state)
    replica = Replica(Leases(url, "r", 600), names, store, config.service.poll_interval)
    poller = Poller(config, store, Recorder(), memory=MemoryCache(), replica=replica)
    scan = poller_module.run_scan

    def scan_then_lose(*args, **kwargs):
        report = scan(*args, **kwargs)
        replica.mine = replica.mine - {names[0]}  # as the renewal thread finds it lost
        return report

    monkeypatch.setattr(poller_module, "run_scan", scan_then_lose)
    try:
        now = datetime.now(UTC)
        poller.poll(now)
    finally:
        poller.close()
        replica.close()
    try:
        assert store.folder(names[0], "INBOX") is None and names[0] not in store.polls()
        assert store.folder(names[1], "INBOX") is not None and names[1] in store.polls()
        assert set(store.parts()) == {names[1]}
    finally:
        store.close()
    for box in made:
        box.close()
