"""A MailSource over the IMAP source and the state cache: a poll fetches only what changed.

Changes are staged per folder and written in one transaction by `commit()`,
after the whole account was read: an interrupted poll writes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from inboxwatch.core.bodytext import Details
from inboxwatch.core.model import MessageMeta, ParseFailure
from inboxwatch.core.ports import Answer, FolderInfo, FolderScan, FolderState, Progress, StateStore
from inboxwatch.core.scan import ScanMemo
from inboxwatch.core.splice import Change
from inboxwatch.errors import CorruptState, InboxwatchError, ServerError
from inboxwatch.imap.source import ImapSource
from inboxwatch.net import Deadline

log = logging.getLogger(__name__)
_TICK = timedelta(microseconds=1)  # the cache's times are whole microseconds (store/rows.py)


class Interrupted(Exception):
    """SIGTERM/SIGINT arrived: abandon the poll, commit nothing."""


@dataclass
class _Staged:
    folder: str
    state: FolderState
    replace: bool
    upsert: list[MessageMeta]
    delete: set[int]
    current: dict[int, MessageMeta]
    failed: dict[int, str]  # new parse failures, by UID (store/failures.py)
    # The folder's messages now, for `run --once` to keep their names (store/names.py);
    # None: not kept. A delta (`SyncingSource.delta`) changes a named folder: only the
    # change is named, and nothing more is needed.
    every: Collection[MessageMeta] | None = None
    removed: Collection[MessageMeta] = ()  # the deleted messages, whose names go


class MemoryCache:
    """The parsed messages of the last committed poll, with the folder state they belong to:
    a running service need not read them back from SQLite on every poll."""

    def __init__(self) -> None:
        self._folders: dict[tuple[str, str], tuple[FolderState, dict[int, MessageMeta]]] = {}
        # Threads and verdicts by account: a poll redoes only what its changes touch.
        self.scans: dict[str, ScanMemo] = {}

    def get(
        self, account: str, folder: str, known: FolderState | None
    ) -> dict[int, MessageMeta] | None:
        entry = self._folders.get((account, folder))
        if entry is None or known is None or entry[0] != known:
            return None  # not cached, or the database moved on (another process, a restart)
        return dict(entry[1])  # a copy: the poll changes it

    def put(
        self, account: str, folder: str, state: FolderState, messages: dict[int, MessageMeta]
    ) -> None:
        self._folders[(account, folder)] = (state, messages)

    def folders(self) -> Iterator[tuple[str, str, dict[int, MessageMeta]]]:
        """Each folder's messages held: account, folder and messages by UID."""
        for (account, folder), (_, messages) in self._folders.items():
            yield account, folder, messages

    def forget(self, account: str) -> None:
        """An account another replica polls now: its messages need not stay in memory."""
        self.scans.pop(account, None)
        for key in [k for k in self._folders if k[0] == account]:
            del self._folders[key]


def _apply_flags(
    cached: dict[int, MessageMeta], flags: dict[int, frozenset[str]]
) -> list[MessageMeta]:
    """Update cached messages whose flags changed; returns the updated ones."""
    changed = []
    for uid, new in flags.items():
        if uid in cached and cached[uid].flags != new:
            cached[uid] = cached[uid]._replace(flags=new)
            changed.append(cached[uid])
    return changed


class _Checked:
    """Passes progress on; a stop request ends the poll between batches."""

    def __init__(self, stop: threading.Event, progress: Progress | None) -> None:
        self.stop = stop
        self.progress = progress

    def expect(self, count: int) -> None:
        if self.progress is not None:
            self.progress.expect(count)

    def advance(self, count: int) -> None:
        if self.stop.is_set():
            raise Interrupted
        if self.progress is not None:
            self.progress.advance(count)


def _late(seconds: float) -> ServerError:
    return ServerError(
        f"reading this account took over {seconds:g}s (service.account_timeout); "
        "the other accounts went on, and this one is read again at the next poll"
    )


class SyncingSource:
    def __init__(
        self,
        inner: ImapSource,
        store: StateStore,
        account: str,
        stop: threading.Event | None = None,
        memory: MemoryCache | None = None,
        *,
        full: bool = False,
        deadline: float | None = None,
        release: Callable[[ImapSource, bool], None] | None = None,
        keep: bool = True,
        named: bool = False,
        naming: bool = True,
    ) -> None:
        self.memory = memory
        self.named = named  # `run --once`: what the cached messages name is kept
        # False (a lean service): a folder read whole is named only where it was named
        # before; the others are named once the poll's report is out (Poller.settle).
        self.naming = naming
        self.full = full  # trust nothing cached: read every folder again (a clock jump)
        self.inner = inner
        self.store = store
        self.account = account
        self.stop = stop or threading.Event()
        self.fetched = 0  # header blocks fetched in this poll
        self._staged: list[_Staged] = []
        # Where the session goes when the account is done (service.sessions: kept for the
        # next poll if nothing failed on it), else it is logged out.
        self.release = release
        # False: a command reading beside the service (service.reuse) writes nothing.
        self.keep = keep
        self.failed = False
        # The account's whole poll within service.account_timeout: at the deadline the
        # session is shut, so whatever it waits for fails, and the next account is read.
        self.deadline = None if deadline is None else Deadline(deadline, inner.abort).start()

    @contextlib.contextmanager
    def _bounded(self) -> Iterator[None]:
        """A failure after the account's deadline is the deadline's, whatever it looked like;
        past the deadline nothing more is asked of the server."""
        deadline = self.deadline
        if deadline is not None and deadline.expired:
            raise _late(deadline.seconds)
        try:
            yield
        except BaseException as exc:
            self.failed = True  # the session may be broken: not kept
            if isinstance(exc, InboxwatchError) and deadline is not None and deadline.expired:
                raise _late(deadline.seconds) from exc
            raise

    def list_folders(self) -> list[FolderInfo]:
        with self._bounded():
            return self.inner.list_folders()

    def fetch_since(
        self,
        folder: str,
        since: datetime,
        progress: Progress | None = None,
        then: str | None = None,
    ) -> FolderScan:
        if self.stop.is_set():
            raise Interrupted
        known, cached, failed = self._cached(folder)
        # The folder read next is examined behind this one's FETCH, with the SEARCH its
        # read will want: the lookback's, for a folder read in full (ImapSource.sync_folder).
        ahead = None if then is None or self.full else self.store.folder(self.account, then)
        unknown = then is not None and ahead is None
        with self._bounded():
            sync = self.inner.sync_folder(
                *(folder, since, known, cached.keys() | failed.keys()),
                _Checked(self.stop, progress),
                then=(then, since if unknown else None, ahead),
            )
        if self.stop.is_set():
            raise Interrupted
        current = {} if sync.replace else cached
        changed = _apply_flags(current, sync.flags)
        aged = {uid for uid, m in current.items() if m.received < since} - sync.gone
        removed = [m for uid in sync.gone | aged if (m := current.pop(uid, None)) is not None]
        current.update((meta.uid, meta) for meta in sync.new)
        self.fetched += len(sync.new) + len(sync.failures)
        new_failures = {f.uid: f.reason for f in sync.failures}
        named = self.named and (self.naming or self.store.named(self.account, folder))
        self._staged.append(
            _Staged(
                *(folder, sync.state, sync.replace, [*changed, *sync.new], sync.gone | aged),
                *(current, new_failures),
                *((current.values(), removed) if named else (None, ())),
            )
        )
        kept = {} if sync.replace else {u: r for u, r in failed.items() if u not in sync.gone}
        old = [ParseFailure(folder, uid, reason) for uid, reason in sorted(kept.items())]
        return FolderScan(folder, list(current.values()), [*old, *sync.failures])

    def delta(self, folder: str, kept: datetime, since: datetime, now: datetime) -> Change | None:
        """What changed in `folder` since a kept report read it at `kept`, as a read at
        `now` with the lookback from `since` would find it, reading from the cache only
        the messages whose flags changed or whose time came; staged as `fetch_since`
        stages. None where only a whole read will do: the folder is not named (a service
        wrote it), its UIDVALIDITY changed, or a message does not parse."""
        if self.stop.is_set():
            raise Interrupted
        known = self.store.folder(self.account, folder)
        if known is None or not self.store.named(self.account, folder):
            return None
        if self.store.parse_failures((self.account, folder, known.uidvalidity)):
            return None  # reported as errors: a kept report has none (nor is there one)
        # The cached UIDs tell expunges apart: not read for a folder the quick check found
        # unchanged (a 100,000-message cache's took ~20 ms a folder).
        sync = self.inner.unchanged(folder, known)
        if sync is None:
            cached = self.store.uids(self.account, folder)
            with self._bounded():
                sync = self.inner.sync_folder(
                    folder, since, known, cached, _Checked(self.stop, None)
                )
        if sync.replace or sync.failures:
            return None
        # As fetch_since: what fell out of the lookback goes (cached before this read).
        gone = sync.gone | self.store.arrived(self.account, folder, None, since - _TICK)
        flagged = self.store.cached(self.account, [(folder, u) for u in sync.flags.keys() - gone])
        changed = [m._replace(flags=sync.flags[m.uid]) for m in flagged]
        changed = [m for m, old in zip(changed, flagged, strict=True) if m.flags != old.flags]
        come = self.store.arrived(self.account, folder, kept, now) - gone
        came = self.store.cached(self.account, [(folder, uid) for uid in come])
        upsert = [*changed, *sync.new]
        removed = self.store.cached(self.account, [(folder, uid) for uid in gone])
        self._staged.append(_Staged(folder, sync.state, False, upsert, gone, {}, {}, (), removed))
        self.fetched += len(sync.new)
        new = {(m.folder, m.uid): m for m in [*came, *upsert] if m.received <= now}
        return Change(new, {(folder, uid) for uid in gone})

    def _cached(
        self, folder: str
    ) -> tuple[FolderState | None, dict[int, MessageMeta], dict[int, str]]:
        """What is known of the folder: its state, its parsed messages, and the UIDs the
        parsers could not read (counted as read: reported again, never fetched again)."""
        known = None if self.full else self.store.folder(self.account, folder)
        cached = self.memory.get(self.account, folder, known) if self.memory else None
        if cached is None:
            try:
                cached = self.store.messages(self.account, folder) if known else {}
            except CorruptState as exc:  # a cached row that no longer decodes: only a cache
                log.warning("%s: %s; reading folder %r in full", self.account, exc, folder)
                known, cached = None, {}
        where = None if known is None else (self.account, folder, known.uidvalidity)
        return known, cached, self.store.parse_failures(where) if where else {}

    def ask_details(self, folder: str, uids: Sequence[int]) -> Answer:
        """Read once per message: the kept ones, and the server's for the rest (asked now,
        read and kept when the answer is called)."""
        state = next((s.state for s in self._staged if s.folder == folder), None)
        where = None if state is None else (self.account, folder, state.uidvalidity)
        found = {} if where is None else self.store.details(where, uids)
        missing = [uid for uid in uids if uid not in found]
        if not missing:  # all kept: the server is not asked (nor the deadline checked)
            return lambda: found
        with self._bounded():
            fresh = self.inner.ask_details(folder, missing)

        def answer() -> dict[int, Details]:
            with self._bounded():
                got = fresh()
            if where is not None and self.keep:
                self.store.save_details(where, got)
            return found | got

        return answer

    def commit(self) -> None:
        with self.store.transaction():
            for s in self._staged:
                self.store.save_folder(
                    *(self.account, s.folder, s.state, s.upsert, s.delete, s.replace),
                    *(s.every, s.removed),
                )
                where = (self.account, s.folder, s.state.uidvalidity)
                self.store.save_failures(where, s.failed, s.delete, s.replace)
        if self.memory is not None:  # only what the database now holds
            for s in self._staged:
                self.memory.put(self.account, s.folder, s.state, s.current)
        self._staged.clear()

    def close(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        if self.release is None:
            self.inner.close()
            return
        expired = self.deadline is not None and self.deadline.expired
        self.release(self.inner, not (self.failed or expired or self.stop.is_set()))
