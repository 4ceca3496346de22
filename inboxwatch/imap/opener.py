"""An ImapSource for a config Account, its password read when the session opens.

Apart from imap.source so that the worker process (imap.workermain), which imports the
session, does not import the config and pydantic: ~0.1 s and ~12 MB a worker.
"""

from __future__ import annotations

from collections.abc import Callable

from inboxwatch.config import Account, env_password_name, resolve_secret
from inboxwatch.imap.source import ImapSource


def open_imap(account: Account) -> Callable[[], ImapSource]:
    """A factory that logs in to the account when the scan gets to it (its password is
    read then, from the config, its file or the environment)."""

    def factory() -> ImapSource:
        password = resolve_secret(
            account, f"accounts[{account.name}]", env_password_name(account.name)
        )
        return ImapSource(account, password)

    return factory
