"""A real PostgreSQL for the tests: `initdb` + `pg_ctl` into a temporary directory, on a
free loopback port, with password (SCRAM) authentication. As root, the server runs as
the `postgres` user (PostgreSQL refuses to run as root); as anyone else, as them."""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

INSTALL_HINT = (
    "PostgreSQL's initdb and pg_ctl are missing: `bash scripts/setup` installs them "
    "(Debian: apt-get install postgresql)"
)


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return versions[-1] if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    def __init__(self, base: Path, port: int, password: str) -> None:
        self.base, self.port, self.password = base, port, password
        self._made = 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://inboxwatch:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database's URL."""
        import psycopg

        self._made += 1
        name = f"state{self._made}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@contextlib.contextmanager
def running() -> Iterator[Postgres]:
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError(INSTALL_HINT)
    base = Path(tempfile.mkdtemp(prefix="inboxwatch-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    password = secrets.token_urlsafe(12)
    pwfile = base / "pw"
    pwfile.write_text(password)
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")
    data, port = base / "data", _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    run(initdb, "-D", str(data), "-U", "inboxwatch", "--auth=scram-sha-256",
        f"--pwfile={pwfile}", "--no-sync")  # fmt: skip
    options = f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start")
    try:
        yield Postgres(base, port, password)
    finally:
        with contextlib.suppress(RuntimeError):
            run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
