"""One JSON file of OAuth tokens per signed-in identity, beside the state database.

Mode 0600 from its first byte (mkstemp), replaced atomically (temp file, fsync, rename)
so a reader never sees half a file, and changed only under an exclusive lock on a
separate `.lock` file: the service, a `run --once` from cron and `inboxwatch auth` may
refresh at the same moment, and a provider that rotates refresh tokens (Microsoft;
Google when configured to) invalidates the old one when it hands out the new one —
two processes refreshing with the same refresh token would leave one of them holding a
dead token. So a refresher re-reads the file under the lock first (auth.refresh).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from inboxwatch.errors import StateError
from inboxwatch.secretfiles import write_atomically


@dataclass
class Tokens:
    provider: str
    client_id: str
    access_token: str = field(repr=False)  # never in a repr: tracebacks, debuggers, logs
    expires_at: float  # UNIX time
    refresh_token: str = field(repr=False)
    scopes: list[str] = field(default_factory=list)
    signed_in_as: str = ""
    signed_in_at: float = 0.0
    refreshed_at: float = 0.0
    # Why the sign-in ended (invalid_grant): set, no refresh is tried until `auth` runs.
    ended: str = ""


def token_path(tokens_dir: Path, identity: str) -> Path:
    """`account-work.json`, `smtp.json`: a name that is safe as a file name."""
    return tokens_dir / (re.sub(r"[^A-Za-z0-9_.-]", "_", identity) + ".json")


class TokenFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Tokens | None:
        """The tokens, or None when nobody signed in yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read the token file: {exc.strerror}") from None
        try:
            data = json.loads(text)
            known = {f.name for f in fields(Tokens)}
            return Tokens(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError, AttributeError):
            # Never quote the file: it holds the tokens.
            raise StateError(
                f"{self.path}: the token file is damaged; delete it and sign in again"
            ) from None

    def write(self, tokens: Tokens) -> None:
        """Atomically, mode 0600: a crash leaves the old file or the new one, never half."""
        try:
            write_atomically(self.path, json.dumps(asdict(tokens), indent=1))
        except OSError as exc:
            raise StateError(f"{self.path}: cannot write the token file: {exc.strerror}") from None

    def forget(self) -> bool:
        """Remove the tokens; False when there were none."""
        with self.locked():
            try:
                self.path.unlink()
            except FileNotFoundError:
                return False
        return True

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes (flock): one refresher at a time."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(f"{lock}: cannot open the token lock: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock
