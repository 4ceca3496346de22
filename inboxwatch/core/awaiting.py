"""They owe me (issue 19, item 1): your own messages nobody answered. A thread whose last
word is yours, sent to someone else — not a list, not a no-reply address, not only to
your own addresses or your team — with no reply from any of its recipients for longer
than `followup_after`. Pure: `as_of` is a parameter."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from inboxwatch.core.model import Address, Finding, MessageMeta, Reason, Thread, by_wait
from inboxwatch.core.rules import Owner, Policy, exclusion, is_no_reply


def _recipients(msg: MessageMeta, owner: Owner, policy: Policy) -> list[Address]:
    return [
        a
        for a in (*msg.to, *msg.cc)
        if not owner.is_address(a.address)
        and not policy.teammate(a.address)
        and not is_no_reply(a.address)
    ]


def _awaited(thread: Thread, owner: Owner, policy: Policy) -> tuple[MessageMeta, Address] | None:
    """Your last message and whom it waits on, if nobody it went to answered since."""
    mine = [m for m in thread.messages if owner.wrote(m) and "\\Draft" not in m.flags]
    if not mine or any(m.list_headers for m in thread.messages):
        return None  # nothing of yours, or a list's thread: nobody owes you there
    last = max(mine, key=lambda m: m.received)
    recipients = _recipients(last, owner, policy)
    if not recipients:
        return None
    asked = {a.key for a in recipients}
    for msg in thread.messages:
        if msg.received <= last.received or owner.wrote(msg) or msg.sender is None:
            continue
        answered = msg.sender.key in asked or policy.team_reply(msg, owner)
        if answered and exclusion(msg, owner, policy) is None:  # an auto-reply is no answer
            return None
    return last, recipients[0]


def owed(account: str, thread: Thread, owner: Owner, policy: Policy) -> Finding | None:
    """The thread's finding if it awaits an answer to your last message, whatever the
    time: how long it has waited is `awaiting`'s to judge."""
    found = _awaited(thread, owner, policy)
    if found is None:
        return None
    mine, recipient = found
    return Finding(
        account=account,
        thread_id=thread.thread_id,
        subject=mine.subject,
        correspondent=recipient,
        waiting_since=mine.received,
        message_ids=(mine.ident,),
        folder=mine.folder,
        uids=(mine.uid,),
        messages_in_thread=len(thread.messages),
        last_reply=mine.received,
        reason=f"you wrote to {recipient.display()}; no answer from them since",
        reasons=(Reason("awaiting", mine.ident, mine.received, recipient.display()),),
    )


class OwedMemo:
    """Each thread's `owed` finding, by thread: a running service's poll judges only the
    threads its changes rebuilt (core.incremental hands back the others as the very same
    objects). At 100,000 messages that is ~0.4 s a poll less; the findings kept are the
    ones the service's last report holds anyway."""

    def __init__(self) -> None:
        self._context: object = None
        # By id(thread): the threads judged last are held, so no other object has their id.
        self._threads: list[Thread] = []
        self._known: dict[int, Finding | None] = {}

    def owed(
        self, account: str, threads: Iterable[Thread], owner: Owner, policy: Policy
    ) -> list[Finding]:
        context = (account, owner, policy)
        known = self._known if context == self._context else {}
        current = list(threads)
        fresh: dict[int, Finding | None] = {}
        for thread in current:
            key = id(thread)
            fresh[key] = known[key] if key in known else owed(account, thread, owner, policy)
        self._threads, self._known, self._context = current, fresh, context
        return [found for found in fresh.values() if found is not None]


def awaiting(
    account: str,
    threads: Iterable[Thread],
    owner: Owner,
    policy: Policy,
    as_of: datetime,
    after: timedelta,
    memo: OwedMemo | None = None,
) -> tuple[list[Finding], list[Finding]]:
    """(waiting longer than `after`, still inside it), longest wait first; `memo`: judge
    only the threads it does not know."""
    late: list[Finding] = []
    soon: list[Finding] = []
    if not after:
        return late, soon  # followup_after = 0: off
    if memo is not None:
        found = memo.owed(account, threads, owner, policy)
    else:
        found = [f for t in threads if (f := owed(account, t, owner, policy)) is not None]
    for entry in found:
        (late if as_of - entry.waiting_since > after else soon).append(entry)
    for items in (late, soon):
        items.sort(key=by_wait)
    return late, soon
