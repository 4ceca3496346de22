"""The ports the core talks through: a MailSource (IMAP, mbox, Maildir), a Sender (SMTP or
stdout), a StateStore (SQLite) and the Progress a source reports to. Implementations
live in the outer packages; tests/contract runs one suite of expectations against each."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import NamedTuple, Protocol

from inboxwatch.core.bodytext import Details
from inboxwatch.core.model import Coverage, MessageMeta, ParseFailure, PollRecord
from inboxwatch.core.snooze import Snooze

# Body details, by UID, once the source answers (MailSource.ask_details).
Answer = Callable[[], dict[int, Details]]


class Progress(Protocol):
    """Where a source reports how far it got: `expect` more messages, `advance` by some."""

    def expect(self, count: int) -> None: ...

    def advance(self, count: int) -> None: ...


# Names clients and servers give the sent folder when SPECIAL-USE (RFC 6154) is absent.
USUAL_SENT_NAMES = (
    "Sent",
    "Sent Items",
    "Sent Messages",
    "Sent Mail",
    "[Gmail]/Sent Mail",
    "[Google Mail]/Sent Mail",
    "INBOX.Sent",
    "INBOX/Sent",
    "INBOX.Sent Items",
    "INBOX.Sent Messages",
    "Gesendet",
    "Gesendete Objekte",
    "Gesendete Elemente",
    "Éléments envoyés",
    "Envoyés",
    "Enviados",
    "Elementos enviados",
    "Posta inviata",
    "Inviata",
    "Verzonden items",
    "Verzonden",
    "Skickat",
    "Skickade objekt",
    "Sendt",
    "Sendte elementer",
    "Wysłane",
    "Отправленные",
)


@dataclass(frozen=True)
class FolderInfo:
    name: str
    special_use: frozenset[str] = frozenset()  # e.g. {"\\Sent"}
    selectable: bool = True


@dataclass
class FolderScan:
    folder: str
    messages: list[MessageMeta] = field(default_factory=list)
    failures: list[ParseFailure] = field(default_factory=list)


@dataclass(frozen=True)
class FolderState:
    """What a server said of a folder on SELECT (RFC 3501 6.3.1, RFC 7162 3.1.2)."""

    uidvalidity: int
    uidnext: int | None
    modseq: int | None  # HIGHESTMODSEQ; None without CONDSTORE
    exists: int | None

    def unchanged_since(self, known: FolderState | None) -> bool:
        """Same UIDVALIDITY, UIDNEXT, message count and HIGHESTMODSEQ: nothing new, no flag
        changed, nothing expunged (HIGHESTMODSEQ moves on every flag change and expunge)."""
        return known == self and self.modseq is not None


@dataclass
class FolderSync:
    """One folder's changes since the cached state."""

    folder: str
    state: FolderState
    replace: bool  # first read, or UIDVALIDITY changed: the cache is rebuilt
    new: list[MessageMeta] = field(default_factory=list)
    failures: list[ParseFailure] = field(default_factory=list)
    flags: dict[int, frozenset[str]] = field(default_factory=dict)  # changed, for cached UIDs
    gone: set[int] = field(default_factory=set)  # expunged, or no longer in the lookback


class MailSource(Protocol):
    """Read-only access to one mailbox.

    `fetch_since` returns the messages of `folder` received at or after `since` (the
    lookback is enforced here, at the source boundary, and nowhere above it); a message
    the parsers cannot read is a ParseFailure in the scan, never an exception.
    """

    def list_folders(self) -> list[FolderInfo]: ...

    def fetch_since(
        self,
        folder: str,
        since: datetime,
        progress: Progress | None = None,
        then: str | None = None,
    ) -> FolderScan:
        """`then` names the folder read next, which a source may prepare meanwhile (IMAP
        sends its EXAMINE behind this folder's last FETCH: a round trip less)."""
        ...

    def ask_details(self, folder: str, uids: Sequence[int]) -> Answer:
        """A little of these messages' bodies (core/bodytext.py), given when the answer is
        called: asked only for pending messages, read with BODY.PEEK and never whole. A
        source may send the request at once, so that it travels while the scan works
        (IMAP); nothing else is asked of the source before the answer is called."""
        ...

    def close(self) -> None: ...


def discover_sent(folders: Sequence[FolderInfo]) -> list[str]:
    """RFC 6154 `\\Sent` folders first; else the first usual name present."""
    marked = [f.name for f in folders if "\\Sent" in f.special_use and f.selectable]
    if marked:
        return marked
    by_name = {f.name.casefold(): f.name for f in folders if f.selectable}
    for usual in USUAL_SENT_NAMES:
        if usual.casefold() in by_name:
            return [by_name[usual.casefold()]]
    return []


class Sender(Protocol):
    """Delivers one finished e-mail (the digest) or raises DeliveryError."""

    def send(self, msg: EmailMessage) -> None: ...


class KeptFinding(NamedTuple):
    """A kept report's finding as the store keeps it (store/keptrows.py): what a poll
    counts and deletes it by, and its row (store.lastreport)."""

    account: str
    thread: str
    kind: int  # its list: store.lastreport.LISTS
    since: int  # waiting since, in microseconds since 1970
    due: int  # when it is overdue (Finding.overdue_at), likewise
    ids: str  # its message ids, one a line
    row: bytes


class KeptChange(NamedTuple):
    """One account's change to a kept report's findings and conversations."""

    account: str
    threads: Collection[str]  # those whose findings go
    findings: Iterable[KeptFinding]  # those that come (made as they are written)
    conversations: Mapping[str, int]  # rows (store.lastreport), by how many more or fewer


class StateStore(Protocol):
    """What a service keeps between polls: each folder's state and cached headers, the
    report a `run --once` keeps, the digest ledger and the poll records. Every write is
    atomic; `save_folder` only inside `transaction()`, whose changes land together or not
    at all."""

    def transaction(self) -> AbstractContextManager[object]: ...

    def folder(self, account: str, folder: str) -> FolderState | None: ...

    def messages(self, account: str, folder: str) -> dict[int, MessageMeta]: ...

    def save_folder(
        self,
        account: str,
        folder: str,
        state: FolderState,
        upsert: Collection[MessageMeta],
        delete: Iterable[int],
        replace: bool,
        every: Collection[MessageMeta] | None = None,
        removed: Collection[MessageMeta] = (),
    ) -> None:
        """`every`: the folder's messages after the change, to keep what they name (only
        `run --once` does: core.splice), and `removed` the deleted ones' (a named folder
        changes by them alone); `every` None leaves the folder unnamed."""
        ...

    def name_folder(self, account: str, folder: str, every: Collection[MessageMeta]) -> None:
        """Keep what the folder's cached messages (`every`, all of them) name: a lean
        service names what it read once its report is out (service.poller)."""
        ...

    def uids(self, account: str, folder: str, latest: int | None = None) -> set[int]:
        """The folder's cached UIDs; `latest`: only that many of the highest."""
        ...

    def named(self, account: str, folder: str) -> bool:
        """Whether the folder's cached messages' names are kept (see `save_folder`)."""
        ...

    def naming(self, account: str, wanted: Collection[str]) -> set[tuple[str, int]]:
        """The (folder, uid) of the named messages having any of `wanted` among their names
        (core.splice.names_of), or more: never fewer."""
        ...

    def arrived(
        self, account: str, folder: str, after: datetime | None, until: datetime
    ) -> set[int]:
        """The cached messages of a named folder received after `after`, up to `until`."""
        ...

    def cached(self, account: str, keys: Collection[tuple[str, int]]) -> list[MessageMeta]: ...

    def parse_failures(self, where: tuple[str, str, int]) -> dict[int, str]:
        """The messages of (account, folder, UIDVALIDITY) the parsers could not read."""
        ...

    def save_failures(
        self,
        where: tuple[str, str, int],
        found: Mapping[int, str],
        gone: Iterable[int],
        replace: bool,
    ) -> None: ...

    def kept_folders(self, fingerprint: str) -> str | None:
        """The kept report's folders line (store.lastreport), if it was made with
        `fingerprint`; its body is read apart, only when it is carried."""
        ...

    def kept_report(self, fingerprint: str, folders: str) -> bytes | None:
        """The kept report's head (its figures: its findings and conversations are rows),
        if it is still the one with these folders."""
        ...

    def save_report(
        self,
        fingerprint: str,
        folders: str,
        head: bytes,
        changes: Sequence[KeptChange],
        whole: bool,
    ) -> bool:
        """The kept report's head, and its rows changed by `changes`; `whole`: the rows are
        all in `changes` (the kept ones are dropped first). False where a conversation to
        take out is not kept: the rows no longer match a head, and none is kept."""
        ...

    def kept_counts(self, account: str, floor: datetime, now: datetime) -> tuple[int, int]:
        """How many of the account's kept findings are overdue at `now` (those kept overdue
        since `floor` or later, those kept waiting and past due), and how many waiting."""
        ...

    def kept_findings(self, near: tuple[str, str, str] | None = None) -> list[tuple[int, bytes]]:
        """The kept findings' lists and rows; `near` (account, thread, message id): only
        the overdue and waiting ones of that thread or holding that message id, or more."""
        ...

    def kept_conversations(self) -> list[tuple[str, str, int]]:
        """The kept conversations' rows, by account, each with how many there are."""
        ...

    def digest(self, period: str) -> tuple[str, str] | None: ...

    def mark_digest(self, period: str, state: str, message_id: str, now: datetime) -> None: ...

    def claim_digest(
        self, period: str, message_id: str, now: datetime, stale_before: datetime | None = None
    ) -> bool:
        """Mark the period "sending", and raise (errors.StateError) unless "sent" can be
        recorded after the server took it: a full disk must fail before SMTP. False when
        it is "sent", or another's claim younger than `stale_before` (None: any) holds it."""
        ...

    def save_parts(self, polled: datetime, parts: Mapping[str, str]) -> None:
        """Each account's report (store.lastreport's, as text) as its poll at `polled` read it."""
        ...

    def touch_parts(self, polled: datetime, names: Sequence[str]) -> None:
        """These accounts were polled at `polled` and nothing changed: their reports stand
        (advanced in time when read: core.carried.advance)."""
        ...

    def parts(self) -> dict[str, tuple[datetime, str]]:
        """Every account's last saved report, with when it was polled."""
        ...

    def digests_seen(self) -> dict[tuple[str, str], int]:
        """How many sent digests listed each (account, thread id) as overdue."""
        ...

    def note_listed(self, period: str, threads: Sequence[tuple[str, str]], now: datetime) -> None:
        """The digest of `period` (its schedule's, whatever the recipients) listed these."""
        ...

    def ledger_lost(self) -> str | None:
        """Why digests are held back (the ledger was lost with a damaged state), or None."""
        ...

    def accept_resend(self) -> None:
        """The user accepted that a period's digest may arrive twice: send again."""
        ...

    def details(self, where: tuple[str, str, int], uids: Sequence[int]) -> dict[int, Details]:
        """What was read before of these messages' bodies, by (account, folder,
        UIDVALIDITY)."""
        ...

    def save_details(self, where: tuple[str, str, int], found: Mapping[int, Details]) -> None: ...

    def forget_details(self, account: str) -> None:
        """Drop what was read of the account's bodies: its cache may be of another mailbox
        (service/backoff.py), whose folders can have this one's UIDVALIDITY and UIDs."""
        ...

    def snoozes(self) -> list[Snooze]:
        """The user's snoozed and muted threads (core/snooze.py)."""
        ...

    def polls(self) -> dict[str, PollRecord]: ...

    def record_poll(
        self,
        account: str,
        now: datetime,
        error: str | None = None,
        code: int | None = None,
        not_before: datetime | None = None,
        covers: Coverage | None = None,
    ) -> None: ...

    def close(self) -> None: ...
