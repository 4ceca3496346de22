"""Typed records passed between the layers; raw IMAP data never leaves the sources."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping


# The domain of the ids given to messages that carry no Message-ID (RFC 2606 .invalid):
# nobody can reply to one, so no reply link cites it.
SYNTHETIC_DOMAIN = "@synthetic.inboxwatch.invalid"


def as_message_id(text: str) -> str:
    """A Message-ID as someone typed it, with the <> people drop when they copy one."""
    text = text.strip()
    return text if text.startswith("<") else f"<{text}>"


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox: display name (decoded, sanitised) and address as written."""

    name: str
    address: str

    @property
    def key(self) -> str:
        return self.address.lower()

    def display(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


class MessageMeta(NamedTuple):
    """What inboxwatch knows of one message: header facts, flags and its clock.

    A NamedTuple, not a frozen dataclass: an audit builds one per message, and a frozen
    dataclass sets each of its 20 fields through `object.__setattr__` (1.7 µs a message
    against 0.25 µs; 0.14 s of a 100,000-message audit). Immutable all the same.
    """

    folder: str
    uid: int
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    sender: Address | None
    received: datetime  # INTERNALDATE (IMAP) or Date (local sources); aware, UTC
    date: datetime | None = None  # the Date header: shown, never trusted as the clock
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    flags: frozenset[str] = frozenset()
    auto_submitted: str = ""
    precedence: str = ""
    list_headers: bool = False  # List-Id or List-Unsubscribe present
    content_type: str = ""  # the media type (`multipart/report`), lower-cased, no parameters
    null_sender: bool = False  # Return-Path: <> (RFC 5321 4.5.5: DSNs, RFC 3834 auto-replies)
    autoreply_header: bool = False  # X-Autoreply / X-Autorespond (vacation programs)
    sender_ambiguous: bool = False  # From names two different addresses (CVE-2023-27043 shape)
    # The provider's own identity of the message and of its conversation (Gmail's
    # X-GM-MSGID and X-GM-THRID): copies under several labels share the first, and
    # messages sharing the second are one thread even where their headers do not link.
    provider_id: str = ""
    thread_hint: str = ""
    list_id: bool = False  # List-Id (RFC 2919): a discussion list's copy, or a newsletter's
    machine: str = ""  # `kind:Header`: machine-sent without the standard marks (parse._machine)

    @property
    def linked(self) -> bool:
        """True when the message carries In-Reply-To or References."""
        return bool(self.in_reply_to or self.references)

    @property
    def ident(self) -> str:
        """Its Message-ID, or for a message without one a synthetic id, stable across scans
        and folders: made of what its sender wrote (From, To, Date, Subject)."""
        if self.message_id:
            return self.message_id
        who = self.sender.key if self.sender else ""
        to = ",".join(a.key for a in self.to)
        when = (self.date or self.received).isoformat()
        digest = hashlib.sha256(f"{who}\0{to}\0{when}\0{self.subject}".encode()).hexdigest()
        return f"<{digest[:24]}{SYNTHETIC_DOMAIN}>"


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """A message the parsers could not understand: counted, never a crash."""

    folder: str
    uid: int
    reason: str


@dataclass(frozen=True, slots=True)
class Thread:
    """Messages joined by their linking headers (or the guarded subject fallback)."""

    thread_id: str
    messages: tuple[MessageMeta, ...]


class Reason(NamedTuple):
    """One fact behind a verdict, for the JSON's `reasons` (issue 18, item 4). `kind`:
    window, pending, last_reply, marked (\\Answered or the handled keyword), no_reply,
    not_counted (a later message left out, and why)."""

    kind: str
    message_id: str = ""
    at: datetime | None = None
    detail: str = ""


class Finding(NamedTuple):
    """One overdue thread, with what the user needs to act on it (a NamedTuple, as
    MessageMeta: a big mailbox can have tens of thousands)."""

    account: str
    thread_id: str
    subject: str
    correspondent: Address
    waiting_since: datetime  # the oldest pending message's time; the wait is as_of minus this
    message_ids: tuple[str, ...]
    folder: str
    uids: tuple[int, ...]
    messages_in_thread: int
    last_reply: datetime | None
    reason: str
    reasons: tuple[Reason, ...] = ()
    event: tuple[str, str] | None = None  # an invitation's (title, start): `invitations`
    # The reply standard that applies (core/standards.py): when the wait turns overdue,
    # how urgent it is, and the rule (`rules[2]`) that set them, if any.
    due: datetime | None = None  # None: waiting_since (no window; awaiting, invitations)
    priority: str = "normal"
    rule: str = ""
    remind: str = ""  # the rule's `remind`: "once" or "daily" ("": daily)
    business_waiting: timedelta | None = None  # on the account's business clock, if it has one
    digests_seen: int = 0  # how many digests listed it before (service/ledger.py)
    escalated: bool = False  # overdue for longer than `escalate_after`

    def overdue_at(self, now: datetime) -> bool:
        """Past its window (strictly: a wait of exactly the window is not yet overdue)."""
        return now > (self.due or self.waiting_since)


def by_wait(f: Finding) -> tuple[datetime, str, str]:
    """The order findings are listed and kept in: longest wait first, then by account and
    thread, so equal waits always come in the same order."""
    return f.waiting_since, f.account, f.thread_id


def by_due(f: Finding) -> tuple[datetime, datetime, str, str]:
    """When each turns overdue, then by wait: how a service keeps the waiting line."""
    return f.due or f.waiting_since, f.waiting_since, f.account, f.thread_id


class Conversation(NamedTuple):
    """One conversation's part of the reply standard, for figures over any span of time
    and per rule or priority (core/trend.py)."""

    since: datetime  # its first message that expected a reply
    due: datetime  # when that message's window ended
    replied: datetime | None  # the first reply; None: none yet, or \Answered (time unknown)
    answered: bool
    rule: str = ""  # the rule that set its window (`rules[2]`), "" for the account's
    priority: str = "normal"


@dataclass(slots=True)
class ReplyStandard:
    """How well the owner kept the window over the lookback, from first messages to first replies.

    A conversation is a thread with an inbound message that expected a reply;
    `judged` counts the ones that can be scored (answered, or waiting past the window).
    """

    conversations: int = 0
    answered: int = 0
    judged: int = 0
    within_window: int = 0
    delays: list[float] = field(default_factory=list)  # seconds to the first reply
    each: list[Conversation] = field(default_factory=list)

    def take(self, c: Conversation) -> datetime | None:
        """Count one conversation in, all of it that does not depend on `now`; return
        when its window ends if it is still open (then it counts as judged once that
        time has passed: the caller knows `now`)."""
        self.conversations += 1
        self.answered += c.answered
        self.each.append(c)
        if c.replied is not None:
            self.judged += 1
            self.within_window += c.replied <= c.due
            self.delays.append((c.replied - c.since).total_seconds())
        elif not c.answered:  # \Answered without a reply read: replied, when is unknown
            return c.due
        return None

    def copy(self) -> ReplyStandard:
        return ReplyStandard(
            *(self.conversations, self.answered, self.judged, self.within_window),
            *([*self.delays], [*self.each]),
        )

    def add(self, other: ReplyStandard, sign: int = 1) -> None:
        """Add `other` in (or, with sign -1, take it back out)."""
        self.conversations += sign * other.conversations
        self.answered += sign * other.answered
        self.judged += sign * other.judged
        self.within_window += sign * other.within_window
        if sign > 0:
            self.delays.extend(other.delays)
            self.each.extend(other.each)
        else:
            for delay in other.delays:
                self.delays.remove(delay)
            for conversation in other.each:
                self.each.remove(conversation)

    def percentile(self, share: float) -> float | None:
        """Nearest-rank percentile of the reply delays, in seconds."""
        if not self.delays:
            return None
        ordered = sorted(self.delays)
        rank = max(1, -(-len(ordered) * share // 1))  # ceil without floats drifting
        return ordered[int(rank) - 1]

    def share_within_window(self) -> float | None:
        return self.within_window / self.judged if self.judged else None


@dataclass(slots=True)
class Stats:
    threads: int = 0
    answered: int = 0
    overdue: int = 0
    pending: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    reply: ReplyStandard = field(default_factory=ReplyStandard)

    def add(self, other: Stats, sign: int = 1) -> None:
        """Add `other` in (or, with sign -1, take it back out)."""
        self.threads += sign * other.threads
        self.answered += sign * other.answered
        self.overdue += sign * other.overdue
        self.pending += sign * other.pending
        for key, value in other.excluded.items():
            total = self.excluded.get(key, 0) + sign * value
            if total:
                self.excluded[key] = total
            else:
                self.excluded.pop(key, None)
        self.reply.add(other.reply, sign)


@dataclass(frozen=True, slots=True)
class ReportError:
    """A problem the report carries; `exit_code` says how serious it is."""

    account: str
    kind: str
    message: str
    exit_code: int
    folder: str | None = None
    uid: int | None = None
    retry_after: float = 0.0  # seconds the server asked us to wait (throttling)


@dataclass(frozen=True, slots=True)
class AccountSummary:
    name: str
    folders: tuple[str, ...]
    sent_folders: tuple[str, ...]
    messages: int
    threads: int
    window: timedelta
    # This account's share of the report's reply standard: a digest of some accounts
    # (an account's `digest_to`) shows theirs alone.
    reply: ReplyStandard = field(default_factory=ReplyStandard)
    ruled: bool = False  # rules give some mail another window than `window`


# The findings a report lists by thread (snoozed and muted are those `hold` takes out).
FINDING_LISTS = ("overdue", "waiting", "invitations", "awaiting", "awaiting_soon")


@dataclass(slots=True)
class Report:
    generated_at: datetime
    as_of: datetime
    window: timedelta | None = None  # set when all mail of every account has one window
    accounts: list[AccountSummary] = field(default_factory=list)
    overdue: list[Finding] = field(default_factory=list)
    waiting: list[Finding] = field(default_factory=list)  # pending, still inside the window
    stats: Stats = field(default_factory=Stats)
    errors: list[ReportError] = field(default_factory=list)
    # Calendar invitations you have not answered (accepted, declined or replied to).
    invitations: list[Finding] = field(default_factory=list)
    # Your messages nobody answered (core/awaiting.py): past `followup_after`, and not yet.
    awaiting: list[Finding] = field(default_factory=list)
    awaiting_soon: list[Finding] = field(default_factory=list)
    # Threads the user snoozed or muted (core/snooze.py): waiting, but not shown.
    snoozed: list[Finding] = field(default_factory=list)
    muted: list[Finding] = field(default_factory=list)

    def listing(self, lists: Mapping[str, list[Finding]]) -> Report:
        """A copy with the lists named in `lists` (of FINDING_LISTS) as given."""
        copy = replace(self)
        for key, found in lists.items():
            if key not in FINDING_LISTS:
                raise KeyError(key)
            setattr(copy, key, found)
        return copy

    def only(self, names: Collection[str]) -> Report:
        """The part of this report about the accounts `names` (their own digest)."""
        lists = [[x for x in items if x.account in names] for items in self._by_account()]
        return self._built([a for a in self.accounts if a.name in names], lists)

    def split(self, names: Collection[str]) -> dict[str, Report]:
        """`only([name])` for each of `names`, in one pass: a replica keeps hundreds of
        accounts' parts each poll, and `only` for each would be quadratic."""
        lists = self._by_account()
        grouped: dict[str, list[list[Any]]] = {name: [[] for _ in lists] for name in names}
        for i, items in enumerate(lists):
            for item in items:
                if (bucket := grouped.get(item.account)) is not None:
                    bucket[i].append(item)
        summaries = {a.name: a for a in self.accounts}
        return {
            name: self._built([summaries[name]] if name in summaries else [], grouped[name])
            for name in names
        }

    def _by_account(self) -> list[list[Any]]:
        """The lists whose items name their account, in `_built`'s order."""
        return [
            self.overdue,
            self.waiting,
            self.errors,
            self.invitations,
            self.awaiting,
            self.awaiting_soon,
            self.snoozed,
            self.muted,
        ]

    def _built(self, accounts: list[AccountSummary], lists: list[list[Any]]) -> Report:
        overdue, waiting, errors, invitations, awaiting, soon, snoozed, muted = lists
        windows = {None if a.ruled else a.window for a in accounts}
        reply = ReplyStandard()
        for summary in accounts:
            reply.add(summary.reply)
        stats = Stats(sum(a.threads for a in accounts), reply.answered, len(overdue))
        stats.pending, stats.reply = len(waiting), reply
        return Report(
            self.generated_at,
            self.as_of,
            windows.pop() if len(windows) == 1 else None,
            accounts,
            overdue,
            waiting,
            stats,
            errors,
            invitations,
            awaiting,
            soon,
            snoozed,
            muted,
        )

    def exit_code(self) -> int:
        """The contract's exit code: the worst error, else 1 if overdue, else 0."""
        serious = [e.exit_code for e in self.errors if e.exit_code > 1]
        if serious:
            return max(serious)
        return 1 if self.overdue else 0


@dataclass(frozen=True)
class Coverage:
    """What an account's cached messages are of (service/backoff.py): which mailbox (a
    digest of its host, port and user name), how far back, and which parsers read them
    (core.generation.PARSERS)."""

    mailbox: str
    lookback: timedelta
    parsed: str


@dataclass(frozen=True)
class PollRecord:
    """What the state remembers of an account's polls: for health and for backing off."""

    account: str
    last_attempt: datetime | None
    last_success: datetime | None
    last_error: str | None
    error_code: int | None
    failures: int
    not_before: datetime | None = None
    covers: Coverage | None = None  # what its cached messages are of
