"""Commands that read the mailbox once (`explain`, `snooze`, `mute`) through the cache the
service keeps, where that cache holds what they read: only what arrived since the last
poll is fetched, as a poll would (service.sync), and nothing is written (the state is
the service's: the source is never committed, nor what it read of bodies kept).

At 100,000 messages `explain` read every header again, ~6 s on loopback and twice that
over a slow link, to show one thread (bench/README.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from inboxwatch.auth.refresh import tokens_dir
from inboxwatch.config import Account, Settings
from inboxwatch.core.model import PollRecord
from inboxwatch.core.ports import MailSource, StateStore
from inboxwatch.core.scan import AccountPlan, SourceFactory
from inboxwatch.imap.opener import open_imap
from inboxwatch.imap.slots import ServerSlots
from inboxwatch.imap.source import ImapSource
from inboxwatch.service.backoff import cache_short, clock_jump, coverage
from inboxwatch.service.sync import SyncingSource

Job = tuple[AccountPlan, SourceFactory]


def through_cache(
    jobs: Sequence[Job],
    settings: Settings,
    store: StateStore,
    now: datetime,
    slots: ServerSlots | None = None,
) -> list[Job]:
    """`jobs` (the config's, as of `now`; their logins under `slots`), each read through
    the cache where it holds the account's mail as a poll would trust it, else as given.
    Only for a read as of now: the cache holds the lookback from the last poll on."""
    polls = store.polls()
    accounts = {a.name: a for a in settings.accounts}
    tokens = tokens_dir(settings)
    chosen: list[Job] = []
    for plan, given in jobs:
        account = accounts[plan.name]
        if _holds(polls.get(plan.name), plan, account, now):
            login = open_imap(account, tokens, slots, resync=True)
            chosen.append((plan, _synced(account, login, store)))
        else:
            chosen.append((plan, given))
    return chosen


def _holds(record: PollRecord | None, plan: AccountPlan, account: Account, now: datetime) -> bool:
    """As a poll judges it (service.poller): polled, no clock jump, what it holds."""
    if record is None or record.last_success is None:
        return False
    if clock_jump(record, plan, now) is not None:
        return False
    return cache_short(record, coverage(account, plan)) is None


def _synced(account: Account, login: Callable[[], ImapSource], store: StateStore) -> SourceFactory:
    def factory() -> MailSource:
        return SyncingSource(login(), store, account.name, keep=False)

    return factory
