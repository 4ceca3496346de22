"""One replica against three on one PostgreSQL (issue 23): 300 accounts × 2,000.

    python bench/replicas.py --accounts 300 --messages 2000 [--rtt-ms 100] [--replicas 1 3]

Starts a throwaway Dovecot with `--accounts` generated mailboxes (bench/accounts.py's),
a PostgreSQL (tests/postgres.py: initdb + pg_ctl), and, with `--rtt-ms`/`--mbit`, the
delay proxy in front of Dovecot. For each replica count, on a new database, starts that
many `inboxwatch run` processes at once (defaults: max_parallel 32, max_per_server 20
each) and measures:
  first    from the start until every account's report is in the database
  steady   the slowest replica's second poll (nothing changed), from its log line
  RSS      each replica's peak (VmHWM), the largest and the sum
  db       connections to the database at most (sampled every 0.2 s)
  imap     connections to the mail server at once, at most (through the proxy only)
Ratios are 3 replicas against 1 in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import delayproxy  # noqa: E402
from bench.accounts import mail_server  # noqa: E402
from bench.mailgen import OWNER  # noqa: E402

_SECONDS = re.compile(r"^poll: (\d+) account\(s\) read.*, ([\d.]+)s")


def config(base: Path, users: list[str], port: int, password: str, url: str) -> Path:
    accounts = "".join(
        f'[[accounts]]\nname = "{u}"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "plain"\n'
        f'username = "{u}"\npassword = "{password}"\naddresses = ["{OWNER}"]\n'
        'lookback = "400d"\n'
        for u in users
    )
    path = base / f"config-{time.monotonic_ns()}.toml"
    path.touch(mode=0o600)
    path.write_text(
        f'{accounts}[service]\npoll_interval = "30s"\naccount_timeout = "10m"\n'
        f'[state]\nurl = "{url}"\nlease = "1m"\n'
    )
    return path


def polls(log: Path) -> list[tuple[int, float]]:
    """Each poll's accounts read and seconds, from a replica's JSON log."""
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("{") and (hit := _SECONDS.match(json.loads(line)["message"])):
            found.append((int(hit.group(1)), float(hit.group(2))))
    return found


def peak_rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


def measure(count: int, path: Path, url: str, accounts: int, proxy: Any) -> dict[str, Any]:
    import psycopg

    logs = [path.with_suffix(f".{n}.log") for n in range(count)]
    if proxy is not None:
        proxy.reset()
    started = time.monotonic()
    command = [sys.executable, "-m", "inboxwatch", "--log-format", "json", "run", "--config"]
    procs = [
        subprocess.Popen([*command, str(path)], stderr=log.open("w"), stdout=subprocess.DEVNULL)
        for log in logs
    ]
    first, db_peak = None, 0
    try:
        with psycopg.connect(url, autocommit=True) as db:
            while True:
                assert all(p.poll() is None for p in procs), "a replica stopped"
                [(conns,)] = db.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid()"
                ).fetchall()
                db_peak = max(db_peak, conns)
                if first is None:
                    try:
                        [(done,)] = db.execute("SELECT count(*) FROM parts").fetchall()
                    except psycopg.errors.UndefinedTable:
                        done = 0
                    if done == accounts:
                        first = time.monotonic() - started
                busy = [[p for p in polls(log) if p[0]] for log in logs]
                if first is not None and all(len(b) >= 2 for b in busy):
                    break
                time.sleep(0.2)
        rss = [peak_rss_mb(p.pid) for p in procs]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(60)
    steady = max(b[1][1] for b in busy)
    imap = proxy.reset().open_peak if proxy is not None else None
    return {
        "first": first,
        "steady": steady,
        "rss_max": max(rss),
        "rss_sum": sum(rss),
        "db": db_peak,
        "imap": imap,
        "split": [b[0][0] for b in busy],
    }


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    delayproxy.add_options(parser)
    return parser.parse_args()


def main() -> int:
    from tests import postgres

    args = arguments()
    rows = {}
    with (
        mail_server(args.accounts, args.messages) as (server, users, base),
        postgres.running() as pg,
        delayproxy.link(args, server.port) as (port, proxy),
    ):
        for count in args.replicas:
            url = pg.new_database()
            path = config(base, users, port, server.password, url)
            rows[count] = measure(count, path, url, args.accounts, proxy)
            print(f"{count} replica(s): {json.dumps(rows[count])}", flush=True)
    print(table(rows))
    return 0


def table(rows: dict[int, dict[str, Any]]) -> str:
    lines = [
        f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores",
        "| replicas | accounts each | first poll s | steady poll s | peak RSS MB (largest;"
        " all) | db connections | imap connections at once |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for count, r in rows.items():
        lines.append(
            f"| {count} | {'/'.join(map(str, r['split']))} | {r['first']:.1f} | "
            f"{r['steady']:.2f} | {r['rss_max']:.0f}; {r['rss_sum']:.0f} | {r['db']} | "
            f"{r['imap'] if r['imap'] is not None else ''} |"
        )
    if 1 in rows and 3 in rows:
        one, three = rows[1], rows[3]
        lines.append(
            f"\n3 / 1 replicas: first {three['first'] / one['first']:.2f}×, steady "
            f"{three['steady'] / one['steady']:.2f}×, largest RSS "
            f"{three['rss_max'] / one['rss_max']:.2f}×"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
