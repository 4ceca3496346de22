"""An ImapSource for a config Account, its password or OAuth token read when the session
opens.

Apart from imap.source so that the worker process (imap.workermain), which imports the
session, does not import the config and pydantic: ~0.1 s and ~12 MB a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from inboxwatch.auth.refresh import account_tokens
from inboxwatch.config import Account, account_password
from inboxwatch.imap.login import Secret
from inboxwatch.imap.slots import ServerSlots
from inboxwatch.imap.source import ImapSource


def open_imap(
    account: Account, tokens_dir: Path, slots: ServerSlots | None = None, resync: bool = False
) -> Callable[[], ImapSource]:
    """A factory that logs in to the account when the scan gets to it (its password is
    read then, from the config, its file or the environment; its token from
    `tokens_dir`, renewed if it is about to expire). With `slots`, a big folder's second
    connection waits for none: it is opened only if the server's cap leaves room. `resync`:
    a session that polls folders it read before (QRESYNC, imap.resync)."""

    def factory() -> ImapSource:
        spare = None if slots is None else lambda: slots.spare(account.host)
        return ImapSource(account, secret(account, tokens_dir), spare=spare, resync=resync)

    return factory


def secret(account: Account, tokens_dir: Path) -> Secret:
    if account.auth == "oauth2":
        tokens = account_tokens(account, tokens_dir)
        return Secret(tokens.access_token(), bearer=True, renew=tokens.access_token)
    return Secret(account_password(account))
