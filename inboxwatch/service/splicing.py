"""`run --once` or a lean service after a change: the kept report brought forward by
what changed (core.splice), reading only the cached messages the change can touch, where
that gives what a whole read would; else None, and the poll reads as before.

At 100,000 messages a whole read of the cache, threading and judging took ~3 s for one
new message, where a running service's poll took 0.25 s (issue 21, bench/README.md).

A whole read still happens where this cannot follow: a digest due (its reply standard is
as of that read), a clock jump or a cache that does not hold the lookback, an account
skipped or failing, `vip_from_sent` (who is a VIP depends on every message you sent),
a folder added, gone or renumbered, a message that does not parse, a sent folder that
might no longer hold your mail (contract rule 6), a change touching more than `LIMIT`
messages, or a folder a replica wrote (its names are not kept: store/names.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime

from inboxwatch.core.bodies import Bodies
from inboxwatch.core.bodytext import Details
from inboxwatch.core.carried import advance
from inboxwatch.core.fanout import side_by_side
from inboxwatch.core.incremental import MAX_CHANGED, Key
from inboxwatch.core.model import AccountSummary, MessageMeta, Report
from inboxwatch.core.ports import StateStore
from inboxwatch.core.refine import Read
from inboxwatch.core.rules import Owner
from inboxwatch.core.scan import AccountPlan, folders_read
from inboxwatch.core.splice import Change, Part, bare, figures, part, region
from inboxwatch.errors import InboxwatchError
from inboxwatch.service.keptreport import Spliced
from inboxwatch.service.sync import SyncingSource

log = logging.getLogger(__name__)
LIMIT = MAX_CHANGED  # messages a change may touch: past it a whole read costs about as much
_OWNED = 200  # sent messages looked at for one of yours (contract rule 6)


class _Kept:
    """core.splice.Cached: an account's cache as the kept report read it (`as_of`)."""

    def __init__(self, store: StateStore, account: str, as_of: datetime) -> None:
        self.store, self.account, self.as_of = store, account, as_of

    def naming(self, names: Collection[str]) -> set[Key]:
        return self.store.naming(self.account, names)

    def meta(self, keys: Collection[Key]) -> dict[Key, MessageMeta]:
        found = self.store.cached(self.account, keys)
        return {(m.folder, m.uid): m for m in found if m.received <= self.as_of}


def named(store: StateStore, folders: Mapping[str, Sequence[str]]) -> bool:
    """Whether every folder the kept report read (by account) has its names kept: else
    the report is not worth decoding (a state from before schema 14)."""
    return all(store.named(account, f) for account, names in folders.items() for f in names)


@contextmanager
def closing(opened: Mapping[str, SyncingSource]) -> Iterator[None]:
    """The accounts' sources closed at the end, whatever happened (their sessions are kept
    for the whole read that may follow: service.sessions)."""
    try:
        yield
    finally:
        for source in opened.values():
            source.close()


def brought(
    kept: Report,
    plans: Sequence[AccountPlan],
    store: StateStore,
    source: Callable[[str], SyncingSource],
    at: tuple[datetime, int],
) -> tuple[Report, list[Spliced]] | None:
    """`kept` (a kept report's head: service.keptreport) brought to `now` with the
    figures a whole read would give, and each account's part before and after the change
    (read through `source(name)`, its changes staged for the caller to commit), which its
    rows change by; None where that cannot be known without a whole read (the module's
    docstring). `at`: now, and how many accounts are read at once (as a whole read does:
    300 accounts over a slow link each wait on a login)."""
    now, parallel = at
    if kept.as_of > now or {a.name for a in kept.accounts} != {p.name for p in plans}:
        return None
    summaries = {a.name: a for a in kept.accounts}

    def one(plan: AccountPlan) -> tuple[Part, Part, int] | None:
        try:
            return _account(plan, summaries[plan.name], store, source(plan.name), (kept.as_of, now))
        except InboxwatchError as exc:
            log.info("%s: %s; reading it whole", plan.name, exc)
            return None

    found = side_by_side(parallel, one, plans, "splice")
    if any(f is None for f in found):
        return None
    report = advance(kept, plans, now)
    parts: list[Spliced] = []
    for plan, (before, after, count) in zip(plans, filter(None, found), strict=True):
        report = figures(report, plan.name, bare(before), bare(after), count)
        parts.append((plan.name, before, after))
    return report, parts


def _account(
    plan: AccountPlan,
    summary: AccountSummary,
    store: StateStore,
    source: SyncingSource,
    times: tuple[datetime, datetime],
) -> tuple[Part, Part, int] | None:
    """The account's parts before and after the change, and its message count now."""
    then, now = times
    chosen = None if plan.policy.vip_from_sent else folders_read(plan, source)
    if chosen is None or [set(f) for f in chosen] != [
        set(summary.folders),
        set(summary.sent_folders),
    ]:
        return None
    watched, sent = chosen
    change = Change()
    for folder in dict.fromkeys([*watched, *sent]):
        found = source.delta(folder, then, now - plan.lookback, now)
        if found is None:
            return None
        change.new.update(found.new)
        change.gone |= found.gone
    owner = Owner.of(plan.addresses)
    if not plan.sent_folders and not _yours(store, (plan.name, sent), owner, change, now):
        return None
    touched = region(change, _Kept(store, plan.name, then), LIMIT)
    if touched is None:
        return None
    policy = replace(plan.policy, sent_folders=frozenset(sent))
    before = part(plan, touched.before, owner, policy, then, _stored(store, plan.name))
    after = part(plan, touched.after, owner, policy, now, Bodies(source).read)
    count = summary.messages - len(touched.before) + len(touched.after)
    return before, after, count


def _yours(
    store: StateStore,
    where: tuple[str, Sequence[str]],
    owner: Owner,
    change: Change,
    now: datetime,
) -> bool:
    """Whether the sent folders still hold a message of yours (contract rule 6: the kept
    report found one; a whole read decides when none of the latest looked at is)."""
    account, sent = where
    if any(owner.wrote(m) and m.folder in sent for m in change.new.values()):
        return True
    for folder in sent:
        uids = store.uids(account, folder, latest=_OWNED + len(change.gone))
        keys = [(folder, uid) for uid in sorted(uids, reverse=True)]
        keys = [key for key in keys if key not in change.gone][:_OWNED]
        if any(owner.wrote(m) and m.received <= now for m in store.cached(account, keys)):
            return True
    return False


def _stored(store: StateStore, account: str) -> Read:
    """The bodies' details as the kept report's read left them (store/bodies.py)."""

    def read(messages: Sequence[MessageMeta]) -> dict[Key, Details]:
        found: dict[Key, Details] = {}
        for folder in {m.folder for m in messages}:
            state = store.folder(account, folder)
            if state is None:
                continue
            uids = [m.uid for m in messages if m.folder == folder]
            kept = store.details((account, folder, state.uidvalidity), uids)
            found.update(((folder, uid), d) for uid, d in kept.items())
        return found

    return read
