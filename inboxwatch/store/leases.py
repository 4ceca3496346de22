"""Replicas sharing the accounts through PostgreSQL (issue 23): each account is leased
by one replica at a time, for `state.lease`, and renewed while that replica lives.

Times are the database's (`clock_timestamp()`), never a replica's own clock: replicas on
machines whose clocks differ by seconds must still agree on when a lease ends. A replica
that dies (kill -9, a node lost) renews nothing more; its leases end within one lease
period and the others take its accounts (`SELECT … FOR UPDATE SKIP LOCKED`: two replicas
taking at once never wait on, or take, the same row).

Fair shares: each replica holds at most ceil(accounts / live replicas), where live means
seen within a lease row's life (the `replicas` heartbeat), so a replica that joins gets
its share as the others give back what is over theirs at their next look, and one that
died stops counting when its leases end.

The leases have a connection of their own: a renewal must not wait behind a poll's
transaction on the store's connection (store/postgres.py).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from inboxwatch.errors import StateError
from inboxwatch.store.postgres import connect, state_error

log = logging.getLogger(__name__)
_NOW = "extract(epoch FROM clock_timestamp())"


@dataclass(frozen=True)
class Held:
    """What one look at the leases found: this replica's accounts, and its fair share."""

    mine: frozenset[str]
    share: int
    free: int  # leases nobody holds (ended, or never taken)


class Leases:
    """One replica's leases, thread-safe (a renewal thread beside the polls).

    `seconds` (`state.lease`) is the promise: a dead replica's accounts are taken over
    within it. So a lease row lasts two thirds of it, renewed every sixth (three renewals
    may fail in a row before it ends), and the others look every sixth for ended ones.
    """

    LOOKS = 6  # looks per lease period: renewals, and the others' looks for ended ones

    def __init__(self, url: str, holder: str, seconds: float) -> None:
        self.url = url
        self.holder = holder
        self.seconds = seconds
        self.row = seconds * 2 / 3  # how long a lease row lasts past its renewal
        self.conn: Any = connect(url)
        self.lock = threading.Lock()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.conn.execute(sql, tuple(params))
        return list(cursor.fetchall()) if cursor.description else []

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One at a time, all or nothing; a connection the server dropped (a restart, a
        failover) fails this one call as one line and is opened again by the next."""
        import psycopg

        with self.lock:
            if self.conn.closed or self.conn.broken:
                self.conn = connect(self.url)
            try:
                with self.conn.transaction():
                    yield
            except psycopg.Error as exc:
                raise state_error(self.url, exc) from None

    def take(self, names: Sequence[str]) -> Held:
        """Renew this replica's leases, give back what is over its share, take free ones
        up to it; the accounts this replica may poll now."""
        with self._transaction():
            self._run(
                "INSERT INTO leases SELECT unnest(%s::text[]), '', 0 ON CONFLICT DO NOTHING",
                (list(names),),
            )
            share = self._share(len(names))
            mine = sorted(self._renew(names))
            if len(mine) > share:
                self._give_back(mine[share:])
                mine = mine[:share]
            elif len(mine) < share:
                mine += [
                    row[0]
                    for row in self._run(
                        "SELECT account FROM leases WHERE account = ANY(%s)"
                        f" AND (holder = '' OR expires < {_NOW}) ORDER BY account"
                        " LIMIT %s FOR UPDATE SKIP LOCKED",
                        (list(names), share - len(mine)),
                    )
                ]
                self._renew(names, mine)
            return Held(frozenset(mine), share, self._free(names))

    def look(self, names: Sequence[str]) -> Held:
        """The renewal thread's look: renew, heartbeat, and whether `take` has work."""
        with self._transaction():
            share = self._share(len(names))
            return Held(frozenset(self._renew(names)), share, self._free(names))

    def _share(self, accounts: int) -> int:
        """The heartbeat, then this replica's fair share of `accounts`."""
        self._run(
            f"INSERT INTO replicas VALUES (%s, {_NOW}) ON CONFLICT (holder)"
            " DO UPDATE SET seen = excluded.seen",
            (self.holder,),
        )
        # Gone for three lease periods: forgotten (a replica that died leaves its row).
        self._run(f"DELETE FROM replicas WHERE seen < {_NOW} - %s", (3 * self.seconds,))
        [(live,)] = self._run(
            f"SELECT count(*) FROM replicas WHERE seen >= {_NOW} - %s", (self.row,)
        )
        return math.ceil(accounts / max(1, int(live)))

    def _renew(self, names: Sequence[str], taking: Sequence[str] = ()) -> list[str]:
        """This replica's unexpired leases among `names` (and `taking`), a period longer."""
        rows = self._run(
            f"UPDATE leases SET holder = %s, expires = {_NOW} + %s WHERE account = ANY(%s)"
            f" AND ((holder = %s AND expires >= {_NOW}) OR account = ANY(%s))"
            " RETURNING account",
            (self.holder, self.row, list(names), self.holder, list(taking)),
        )
        return [row[0] for row in rows]

    def _give_back(self, names: Sequence[str]) -> None:
        self._run(
            "UPDATE leases SET holder = '', expires = 0 WHERE holder = %s AND account = ANY(%s)",
            (self.holder, list(names)),
        )

    def _free(self, names: Sequence[str]) -> int:
        [(free,)] = self._run(
            "SELECT count(*) FROM leases WHERE account = ANY(%s)"
            f" AND (holder = '' OR expires < {_NOW})",
            (list(names),),
        )
        return int(free)

    def close(self) -> None:
        """Every lease given back and the heartbeat removed (a clean stop), so the other
        replicas take the accounts at once instead of after the lease period."""
        try:
            with self._transaction():
                self._run(
                    "UPDATE leases SET holder = '', expires = 0 WHERE holder = %s", (self.holder,)
                )
                self._run("DELETE FROM replicas WHERE holder = %s", (self.holder,))
        except StateError as exc:  # a lost database: the leases end by themselves
            log.info("leases not given back (%s); they end within %.0f s", exc, self.seconds)
        finally:
            self.conn.close()
