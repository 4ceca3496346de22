"""Several `inboxwatch run` replicas on one PostgreSQL (issue 23): the accounts shared by
lease (store/leases.py), each account's report kept in the database, and each digest
composed from every account's report by whichever replica finds it due.

The digest's ledger claim is one statement (store.sqlstate.claim_digest), so of two
replicas due at once one sends; a claim whose replica died before it said "sent" is
taken over once older than one lease period, with the same Message-ID.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from inboxwatch.config import Settings
from inboxwatch.core.model import Report
from inboxwatch.core.ports import StateStore
from inboxwatch.store import lastreport
from inboxwatch.store.leases import Held, Leases

log = logging.getLogger(__name__)
SETTLE = 5.0  # seconds a starting replica waits for the others starting with it


def replica_of(settings: Settings, store: StateStore) -> Replica | None:
    """The replica's part when the state is PostgreSQL; None with SQLite (one service)."""
    if settings.state.url is None:
        return None
    seconds = settings.state.lease.total_seconds()
    leases = Leases(settings.state.url.get_secret_value(), holder(), seconds)
    names = [a.name for a in settings.accounts]
    return Replica(leases, names, store, settings.service.poll_interval)


def holder() -> str:
    """This replica's name in the lease table: the host (a pod's name), the process, and a
    random part (two containers may share a host name and a pid)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


class Replica:
    """One replica's part: which accounts it polls, what it tells the others."""

    def __init__(
        self, leases: Leases, names: Sequence[str], store: StateStore, poll_interval: timedelta
    ) -> None:
        self.leases = leases
        self.names = list(names)
        self.store = store
        self.poll_interval = poll_interval
        self.mine: frozenset[str] = frozenset()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._parts: dict[str, tuple[datetime, str]] = {}
        self._saved: set[str] = set()  # accounts whose part this replica last wrote

    @property
    def stale(self) -> timedelta:
        """A digest claim older than this was left by a replica that died."""
        return timedelta(seconds=self.leases.seconds)

    def take(self) -> frozenset[str]:
        """At a poll's start: the accounts this replica polls now."""
        held = self.leases.take(self.names)
        # Each poll says what it reads; the names only when they changed (300 accounts).
        names = ", ".join(sorted(held.mine)) if held.mine != self.mine else "as before"
        log.info("leases: polling %d of %d accounts: %s", len(held.mine), len(self.names), names)
        self.mine = held.mine
        return held.mine

    def keep(self, report: Report, polled: datetime, names: Sequence[str], read: bool) -> None:
        """The reports of the accounts this poll read, for every replica's digests. A poll
        that read nothing (no folder changed) only notes the time: re-writing every part
        each poll cost 11 MB and 0.5 s for 100 accounts of 500 messages (bench/README)."""
        if not read and self._saved.issuperset(names):
            self.store.touch_parts(polled, names)
            return
        parts = {
            name: lastreport.encode(part).decode() for name, part in report.split(names).items()
        }
        if parts:
            self.store.save_parts(polled, parts)
        self._saved = set(names)

    def everyone(self) -> list[Report]:
        """Every account's last report (each as the replica that polled it saw it, to be
        advanced in time: core.carried.advance)."""
        self._parts = self.store.parts()
        return [lastreport.decode(self._parts[n][1]) for n in self.names if n in self._parts]

    def ready(self, accounts: Sequence[str], run: datetime, now: datetime) -> bool:
        """Whether a digest scheduled at `run` may go out: each of its accounts polled since
        (every replica polls at the digest's time), or, after two poll intervals, as its
        last poll found it (an account nobody could poll waits no longer)."""
        polled = [self._parts[n][0] if n in self._parts else None for n in accounts]
        if all(p is not None and p >= run for p in polled):
            return True
        return all(p is not None for p in polled) and now - run >= 2 * self.poll_interval

    def start(self, wake: Callable[[], None] | None, settle: bool = True) -> None:
        """The renewal thread: leases renewed while polls run and between them; `wake`
        called when this replica should take or give back accounts (a replica died or
        joined) rather than wait for its next poll.

        First the heartbeat, and one look's wait (at most SETTLE): replicas started
        together (`compose up`, a new Deployment) then see each other before taking,
        instead of the first taking every account for its whole first poll. Not for
        `run --once` (`settle` False): a cron job would pay it every run."""
        self.leases.look(self.names)
        if settle:
            self._stop.wait(min(self.leases.seconds / Leases.LOOKS, SETTLE))
        self._thread = threading.Thread(target=self._renewing, args=(wake,), daemon=True)
        self._thread.name = "leases"
        self._thread.start()

    def _renewing(self, wake: Callable[[], None] | None) -> None:
        while not self._stop.wait(self.leases.seconds / Leases.LOOKS):
            try:
                held = self.leases.look(self.names)
            except Exception as exc:  # the database away: the next look tries again
                log.warning("leases not renewed: %s", exc)
                continue
            self._lost(held)
            if wake is not None and _unbalanced(held):
                wake()

    def _lost(self, held: Held) -> None:
        lost = self.mine - held.mine
        if lost:  # renewals failed for longer than a lease: another may poll them now
            log.warning("leases lost on %s; left to other replicas", ", ".join(sorted(lost)))
            self.mine = held.mine

    def close(self) -> None:
        """A clean stop: the leases given back so the others take them at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.leases.close()


def _unbalanced(held: Held) -> bool:
    return len(held.mine) > held.share or (len(held.mine) < held.share and held.free > 0)
