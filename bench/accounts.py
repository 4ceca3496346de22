"""Many accounts in one service: first and steady polls, serial against side by side.

    python bench/accounts.py --accounts 20 --messages 5000 --rounds 3 [--rtt-ms 100]

Starts a throwaway Dovecot (tests/dovecot.py) with `--accounts` users, each a generated
mailbox (bench/mailgen.py, its own seed) of `--messages`; with `--rtt-ms`, every
connection goes through bench/delayproxy.py. Each measure runs in its own process (a
clean peak RSS) on a new state file, as `inboxwatch run` does: a first poll (reads
everything), then a steady poll (nothing changed: the quick check). Medians of the rounds:
  one       the first account alone
  serial    all accounts, max_parallel = 1 (the old way: one after the other)
  parallel  all accounts, max_parallel = --parallel (default: the config's default)
Ratios are against `one` and `serial` of the same run; RSS per account is
(parallel's RSS - one's) / (accounts - 1), and what the service holds between polls
after them (it is lean: service.lean).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import delayproxy  # noqa: E402
from bench.mailgen import OWNER, write_maildir  # noqa: E402


def settings(
    port: int, password: str, users: list[str], parallel: int, per_server: int, state: str
) -> Any:
    from inboxwatch.config import Settings

    accounts = [
        {
            "name": user,
            "host": "127.0.0.1",
            "port": port,
            "security": "plain",
            "username": user,
            "password": password,
            "addresses": [OWNER],
            "lookback": "400d",
        }
        for user in users
    ]
    return Settings(
        accounts=accounts, state={"path": state}, max_parallel=parallel, max_per_server=per_server
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """In its own process: a service's first poll, then its steady poll."""
    from inboxwatch.delivery.smtp import StdoutSender
    from inboxwatch.service.poller import Poller
    from inboxwatch.service.sync import MemoryCache
    from inboxwatch.store.sqlite import SqliteStore

    users = json.loads(args.users)
    config = settings(args.port, args.password, users, args.parallel, args.per_server, args.state)
    store = SqliteStore(Path(args.state))
    now = datetime.fromisoformat(args.now)
    # As `inboxwatch run` makes it: lean (service.lean), its report kept and its memory
    # dropped once the first poll's line is out (`settle`, not timed).
    poller = Poller(
        config, store, StdoutSender(), memory=MemoryCache(), keep_report=True, lean=True
    )
    try:
        started = time.perf_counter()
        first = poller.poll(now)
        first_s = time.perf_counter() - started
        failed = [e for e in first.report.errors if e.exit_code > 1]
        assert not failed, failed
        poller.settle()
        # The runner notes the link's counts of the first poll, then lets the steady go.
        print("first done", flush=True)
        sys.stdin.readline()
        started = time.perf_counter()
        steady = poller.poll(now)
        steady_s = time.perf_counter() - started
    finally:
        poller.close()
        store.close()
    return {
        "first": first_s,
        "steady": steady_s,
        "fetched": first.fetched,
        "steady_fetched": steady.fetched,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_now_mb": int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20,
        "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def run_one(
    port: int, password: str, users: list[str], limits: tuple[int, int], base: Path, proxy: Any
) -> dict[str, Any]:
    """One measure in its own process; `limits`: max_parallel, max_per_server."""
    parallel, per_server = limits
    state = base / f"state-{time.monotonic_ns()}.db"
    command = [
        sys.executable,
        __file__,
        "--measure",
        f"--port={port}",
        f"--password={password}",  # a generated password may start with "-"
        f"--users={json.dumps(users)}",
        f"--parallel={parallel}",
        f"--per-server={per_server}",
        f"--now={datetime.now(UTC).isoformat()}",
        f"--state={state}",
    ]
    if proxy is not None:
        proxy.reset()
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        assert child.stdin is not None and child.stdout is not None
        child.stdout.readline()  # "first done"
        first = proxy.reset() if proxy is not None else None
        child.stdin.write("go\n")
        child.stdin.flush()
        out, err = child.communicate()
    for path in base.glob(f"{state.name}*"):
        path.unlink()
    if child.returncode != 0:
        raise SystemExit(f"measure failed:\n{err[-3000:]}")
    row = dict(json.loads(out.strip().splitlines()[-1]))
    if proxy is not None and first is not None:
        steady = proxy.reset()
        row.update(trips=steady.round_trips, first_connections=first.open_peak)
    return row


def table(results: dict[str, list[dict[str, Any]]], accounts: int) -> str:
    med = {
        kind: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        for kind, rows in results.items()
    }
    lines = [
        "| measure | first poll s | steady poll s | steady round trips | connections at once"
        " (first) | peak RSS MB (+ worker) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, row in med.items():
        trips = f"{row['trips']:.0f} | {row['first_connections']:.0f}" if "trips" in row else " | "
        lines.append(
            f"| {kind} | {row['first']:.3f} | {row['steady']:.3f} | {trips} | {row['rss_mb']:.0f}"
            + (f" (+ {row['worker_rss_mb']:.0f})" if row["worker_rss_mb"] else "")
            + " |"
        )
    if len(med) < 3:
        return "\n".join(lines)
    one, serial, side = med["one"], med["serial"], med["parallel"]
    lines += [
        "",
        f"steady: parallel / one = {side['steady'] / one['steady']:.2f}× (target ≤ 2×); "
        f"serial / one = {serial['steady'] / one['steady']:.2f}×",
        f"first: parallel / serial = {side['first'] / serial['first']:.2f}×; "
        f"parallel / one = {side['first'] / one['first']:.2f}×",
        f"RSS per account: {(side['rss_mb'] - one['rss_mb']) / max(accounts - 1, 1):.2f} MB"
        f" at the peak; between polls {side['rss_now_mb']:.0f} MB in all (one:"
        f" {one['rss_now_mb']:.0f} MB)",
    ]
    return "\n".join(lines)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=0, help="0: the config's default")
    parser.add_argument("--per-server", type=int, default=0, help="0: the config's default")
    parser.add_argument(
        "--only", choices=["one", "serial", "parallel"], action="append", help="these measures"
    )
    delayproxy.add_options(parser)
    parser.add_argument("--measure", action="store_true")
    parser.add_argument("--port", type=int)
    parser.add_argument("--password")
    parser.add_argument("--users")
    parser.add_argument("--now")
    parser.add_argument("--state")
    return parser.parse_args()


def mailboxes(base: Path, count: int, messages: int) -> list[str]:
    users = [f"acct{n}" for n in range(count)]
    now = datetime.now(UTC)
    for n, user in enumerate(users):
        maildir = base / "mail" / user
        write_maildir(maildir, messages, now, seed=7 + n)
        if os.geteuid() == 0:
            for path in [maildir, *maildir.rglob("*")]:
                shutil.chown(path, "dovecot", "dovecot")
    return users


def rounds(args: argparse.Namespace, server: Any, users: list[str], base: Path) -> str:
    from inboxwatch.config import Settings

    parallel = args.parallel or Settings.model_fields["max_parallel"].default
    per_server = args.per_server or Settings.model_fields["max_per_server"].default
    results: dict[str, list[dict[str, Any]]] = {}
    with delayproxy.link(args, server.port) as (port, proxy):
        for round_ in range(args.rounds):
            for kind, chosen, width in (
                ("one", users[:1], 1),
                ("serial", users, 1),
                ("parallel", users, parallel),
            ):
                if args.only and kind not in args.only:
                    continue
                row = run_one(port, server.password, chosen, (width, per_server), base, proxy)
                results.setdefault(kind, []).append(row)
            print(f"round {round_ + 1} done", flush=True)
    head = (
        f"max_parallel = {parallel}, max_per_server = {per_server}; "
        f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores"
    )
    return head + "\n" + table(results, args.accounts)


def main() -> int:
    args = arguments()
    if args.measure:
        print(json.dumps(measure(args)))
        return 0
    with mail_server(args.accounts, args.messages) as (server, users, base):
        print(rounds(args, server, users, base))
    return 0


@contextlib.contextmanager
def mail_server(accounts: int, messages: int) -> Iterator[tuple[Any, list[str], Path]]:
    """A throwaway Dovecot with `accounts` generated mailboxes, its users and its folder."""
    from tests.dovecot import Dovecot

    base = Path(tempfile.mkdtemp(prefix="inboxwatch-bench-"))
    os.chmod(base, 0o755)
    server = Dovecot(base)
    server.start()
    try:
        users = mailboxes(base, accounts, messages)
        print(f"{accounts} accounts × {messages} messages", flush=True)
        yield server, users, base
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
