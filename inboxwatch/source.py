"""The mail-source interface shared by the IMAP and the local (mbox/Maildir) sources."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from inboxwatch.model import MessageMeta, ParseFailure

Progress = Callable[[int], None]  # called with the number of messages just read

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


class MailSource(Protocol):
    """Read-only access to one mailbox."""

    def list_folders(self) -> list[FolderInfo]: ...

    def fetch_since(
        self, folder: str, since: datetime, progress: Progress | None = None
    ) -> FolderScan: ...

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
