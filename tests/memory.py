"""In-memory implementations of the core's ports, for fast unit tests; tests/contract holds
them to the same expectations as the real ones."""

from __future__ import annotations

import email
from collections.abc import Callable, Sequence
from datetime import datetime
from email.message import EmailMessage

from inboxwatch.core.bodytext import Details, details_of
from inboxwatch.core.model import MessageMeta, ParseFailure
from inboxwatch.core.parse import parse_headers
from inboxwatch.core.ports import FolderInfo, FolderScan, Progress
from inboxwatch.errors import ConfigError
from inboxwatch.local.source import _header_block

Stored = tuple[bytes, datetime, tuple[str, ...]]  # raw message, received, flags


class MemorySource:
    """A mailbox held in memory: folders of raw messages with a received time and flags,
    parsed by the core's own parser, as the IMAP source parses what it fetches."""

    def __init__(self, folders: dict[str, list[Stored]], sent: str = "Sent") -> None:
        self.folders = folders
        self.sent = sent
        self.closed = False

    def list_folders(self) -> list[FolderInfo]:
        special = frozenset({"\\Sent"})
        return [
            FolderInfo(name, special if name == self.sent else frozenset()) for name in self.folders
        ]

    def fetch_since(
        self,
        folder: str,
        since: datetime,
        progress: Progress | None = None,
        then: str | None = None,  # the folder read next: nothing to prepare here
    ) -> FolderScan:
        if folder not in self.folders:
            raise ConfigError(f"folder {folder!r} not found among {', '.join(self.folders)}")
        stored = self.folders[folder]
        if progress is not None:
            progress.expect(len(stored))
        scan = FolderScan(folder)
        for uid, (raw, received, flags) in enumerate(stored, start=1):
            if received < since:
                continue
            meta: MessageMeta | ParseFailure = parse_headers(
                _header_block(raw), folder, uid, received, flags
            )
            (scan.failures if isinstance(meta, ParseFailure) else scan.messages).append(meta)  # type: ignore[arg-type]
        if progress is not None:
            progress.advance(len(stored))
        return scan

    def ask_details(self, folder: str, uids: Sequence[int]) -> Callable[[], dict[int, Details]]:
        stored = self.folders[folder]
        return lambda: {
            uid: details_of(email.message_from_bytes(stored[uid - 1][0])) for uid in uids
        }

    def close(self) -> None:
        self.closed = True


class MemorySender:
    """Keeps what it was given to send."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    def send(self, msg: EmailMessage) -> None:
        self.sent.append(msg)
