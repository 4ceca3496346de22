"""Local sources: mbox files, Maildir trees (as synced by mbsync or offlineimap) and
folders of .eml files (as mail clients export them).

They sit behind the same interface as the IMAP source, serve the bundled
demo, and never write: mailbox.mbox/Maildir are only read. Local mail has no
INTERNALDATE, so the Date header is the clock (contract, rule 5); failing
that, the mbox "From " line or the Maildir file's mtime, which is when the
message was delivered.
"""

from __future__ import annotations

import email
import functools
import mailbox
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from inboxwatch.core.bodytext import Details, details_of
from inboxwatch.core.model import MessageMeta, ParseFailure
from inboxwatch.core.parse import MAX_HEADER_BYTES, parse_headers
from inboxwatch.core.ports import Answer, FolderInfo, FolderScan, Progress
from inboxwatch.errors import ConfigError

# mbox Status/X-Status letters and Maildir info letters -> IMAP flags.
_MBOX_FLAGS = {"A": "\\Answered", "D": "\\Deleted", "F": "\\Flagged", "R": "\\Seen"}
_MAILDIR_FLAGS = {"R": "\\Answered", "T": "\\Deleted", "F": "\\Flagged", "S": "\\Seen"}


def _header_block(raw: bytes) -> bytes:
    head = raw[:MAX_HEADER_BYTES]
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = head.find(sep)
        if end >= 0:
            return head[: end + len(sep)]
    return head


def _from_line_date(from_line: str) -> datetime | None:
    """`user@host  Fri Feb 22 17:06:23 2008` -> aware UTC time (asctime is UTC by convention)."""
    parts = from_line.split()
    try:
        parsed = time.strptime(" ".join(parts[1:6]), "%a %b %d %H:%M:%S %Y")
    except (ValueError, IndexError):
        return None
    return datetime(*parsed[:6], tzinfo=UTC)


def _emls(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".eml" and p.is_file())


class EmlFolder:
    """A directory of .eml files, one message each: read-only, in file-name order. No
    flags; a message without a usable Date is timed by its file's mtime."""

    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise ConfigError(f".eml folder {path} does not exist")
        self.files = _emls(path)

    def __len__(self) -> int:
        return len(self.files)

    def header(self, key: int) -> bytes:
        with self.files[key].open("rb") as file:  # the headers only, never a whole body
            return _header_block(file.read(MAX_HEADER_BYTES))

    def mtime(self, key: int) -> datetime:
        return datetime.fromtimestamp(self.files[key].stat().st_mtime, UTC)

    def close(self) -> None:
        pass


Folder = mailbox.Mailbox[mailbox.Message] | EmlFolder


def _keys(box: mailbox.Mailbox[mailbox.Message]) -> list[str]:
    """A folder's messages in UID order: a Maildir's by file name (its order on disk is
    the directory's), an mbox's as stored."""
    return sorted(box.keys()) if isinstance(box, mailbox.Maildir) else list(box.keys())


class LocalSource:
    """mbox files (one folder each, named by the file's stem), .eml folders (named by the
    directory) and/or one Maildir tree."""

    def __init__(
        self, mboxes: Iterable[Path] = (), maildir: Path | None = None, emls: Iterable[Path] = ()
    ) -> None:
        self._folders: dict[str, Folder] = {}
        for path in mboxes:
            if not path.is_file():
                raise ConfigError(f"mbox file {path} does not exist")
            self._folders[path.stem] = mailbox.mbox(path, create=False)
        for path in emls:
            self._folders[path.resolve().name] = EmlFolder(path)
        if maildir is not None:
            self._add_maildir_tree(maildir)
        if not self._folders:
            raise ConfigError("no local mail given: pass --mbox PATH, --maildir PATH or --eml DIR")

    def _add_maildir_tree(self, root: Path) -> None:
        if not root.is_dir():
            raise ConfigError(f"Maildir {root} does not exist")
        if not (root / "cur").is_dir() and next(root.rglob("cur"), None) is None:
            if _emls(root):
                raise ConfigError(f"{root} holds .eml files, not a Maildir: use --eml {root}")
            raise ConfigError(
                f"{root} is not a Maildir: it has no cur/ directory, nor any below it"
            )
        if (root / "cur").is_dir():
            # Maildir++: the root is INBOX, sub-folders are dot-directories.
            box = mailbox.Maildir(root, factory=None, create=False)
            self._folders["INBOX"] = box
            for name in box.list_folders():
                self._folders[name] = box.get_folder(name)
            return
        # mbsync/offlineimap "Path" layout: one Maildir per sub-directory.
        for cur in sorted(root.rglob("cur")):
            folder = cur.parent
            name = folder.relative_to(root).as_posix()
            self._folders[name] = mailbox.Maildir(folder, factory=None, create=False)

    def list_folders(self) -> list[FolderInfo]:
        return [FolderInfo(name) for name in self._folders]

    def fetch_since(
        self,
        folder: str,
        since: datetime,
        progress: Progress | None = None,
        then: str | None = None,  # the folder read next: nothing to prepare here
    ) -> FolderScan:
        box = self._folder(folder)
        scan = FolderScan(folder)
        if progress is not None:
            progress.expect(len(box))
        for uid, meta in self._read(folder, box):
            if isinstance(meta, ParseFailure):
                scan.failures.append(meta)
            elif meta.received >= since:
                scan.messages.append(meta)
            if progress is not None and uid % 100 == 0:
                progress.advance(100)
        return scan

    def _read(self, folder: str, box: Folder) -> Iterator[tuple[int, MessageMeta | ParseFailure]]:
        if isinstance(box, EmlFolder):
            yield from self._read_emls(folder, box)
            return
        for uid, key in enumerate(_keys(box), start=1):
            msg = box.get_message(key)
            flags, fallback = self._flags_and_time(msg)
            raw = _header_block(box.get_bytes(key))
            meta = parse_headers(raw, folder, uid, None, flags)
            if isinstance(meta, ParseFailure) and fallback is not None:
                meta = parse_headers(raw, folder, uid, fallback, flags)
            yield uid, meta

    @staticmethod
    def _read_emls(folder: str, box: EmlFolder) -> Iterator[tuple[int, MessageMeta | ParseFailure]]:
        for index in range(len(box)):
            raw = box.header(index)
            meta = parse_headers(raw, folder, index + 1, None, [])
            if isinstance(meta, ParseFailure):
                meta = parse_headers(raw, folder, index + 1, box.mtime(index), [])
            yield index + 1, meta

    @staticmethod
    def _flags_and_time(msg: mailbox.Message) -> tuple[list[str], datetime | None]:
        if isinstance(msg, mailbox.MaildirMessage):
            flags = [_MAILDIR_FLAGS[c] for c in msg.get_flags() if c in _MAILDIR_FLAGS]
            return flags, datetime.fromtimestamp(msg.get_date(), UTC)
        if isinstance(msg, mailbox.mboxMessage):
            flags = [_MBOX_FLAGS[c] for c in msg.get_flags() if c in _MBOX_FLAGS]
            return flags, _from_line_date(msg.get_from())
        return [], None

    def _folder(self, folder: str) -> Folder:
        box = self._folders.get(folder)
        if box is None:
            raise ConfigError(f"folder {folder!r} not found among {', '.join(self._folders)}")
        return box

    def ask_details(self, folder: str, uids: Sequence[int]) -> Answer:
        """Read from disk when the answer is called: nothing travels meanwhile."""
        return functools.partial(self._details, folder, uids)

    def _details(self, folder: str, uids: Sequence[int]) -> dict[int, Details]:
        box = self._folder(folder)
        found = {}
        if isinstance(box, EmlFolder):
            for uid in uids:
                raw = box.files[uid - 1].read_bytes()
                found[uid] = details_of(email.message_from_bytes(raw))
            return found
        keys = _keys(box)
        for uid in uids:
            found[uid] = details_of(box.get_message(keys[uid - 1]))
        return found

    def close(self) -> None:
        for box in self._folders.values():
            box.close()
