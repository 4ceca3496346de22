"""Which folder a session has selected, and EXAMINEs whose answers are still to be read.

A folder is selected by EXAMINE (read-only SELECT, RFC 3501 6.3.2). Three things spare
that round trip: the quick check's EXAMINEs, sent together, leave the last folder
selected for the poll that follows; a scan reads sent folders first, so INBOX is still
selected for the body checks; and the next folder's EXAMINE (with its SEARCH) goes
behind a folder's last header FETCH. RFC 3501 5.5 lets a client send commands before
earlier ones are answered; the server runs an EXAMINE after the FETCH before it (it
changes the selected folder), so the FETCH's answers still come first, and the
EXAMINE's round trip overlaps their transfer: 0.1 s a folder after the first at 100 ms
RTT. Whatever asks the server anything next reads that answer first (`settle`), so the
session never reads past an answer it did not ask for.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from imapclient.datetime_util import format_criteria_date

from inboxwatch.core.ports import FolderState
from inboxwatch.imap.answers import Asked, Examined, Prefetch
from inboxwatch.imap.resync import Resync
from inboxwatch.imap.stream import StreamError, read_fetch
from inboxwatch.imap.transport import MAX_LITERAL
from inboxwatch.imap.watch import SocketWatch
from inboxwatch.imap.wire import Known, Listing, WatchedClient, connection

log = logging.getLogger(__name__)
# An answer this recent (seconds) still stands for the read that follows it: a quick
# check's states, the LIST sent with the LOGIN (imap.source). A session kept for the next
# poll, minutes later, asks again.
FRESH = 30.0


def heard_lately(at: float) -> bool:
    """An answer heard at `at` (time.monotonic()) still stands: within FRESH seconds."""
    return time.monotonic() - at < FRESH


def search_since(since: datetime | None) -> bytes:
    """SEARCH SINCE has day granularity in the server's zone (RFC 3501 6.4.4): a day
    early, then the records are filtered on INTERNALDATE exactly. None: no SEARCH."""
    if since is None:
        return b""
    day: bytes = format_criteria_date((since - timedelta(days=1)).date())
    return b"SINCE " + day


def folder_state(info: dict[bytes, Any]) -> FolderState:
    """A folder's state from its EXAMINE's answer."""
    modseq = info.get(b"HIGHESTMODSEQ")
    # RFC 3501 requires UIDVALIDITY; without it (0) a worker's check fails: read alone.
    return FolderState(
        int(info.get(b"UIDVALIDITY") or 0),
        int(info.get(b"UIDNEXT") or 0) or None,
        int(modseq) if modseq else None,
        int(info.get(b"EXISTS") or 0),
    )


def _known(state: FolderState | None) -> Known:
    """A folder's last state as QRESYNC names it (RFC 7162 3.2.5); none without a modseq."""
    if state is None or state.modseq is None:
        return None
    return state.uidvalidity, state.modseq


class NextFolder:
    """`folder`'s EXAMINE (and SEARCH `search`, if any; and with `fetch`, the FETCH of what
    it finds: `WatchedClient.examine_send`), sent by `send` behind a FETCH and read once
    by `answer`."""

    def __init__(
        self,
        client: WatchedClient,
        watch: SocketWatch,
        folder: str,
        search: bytes,
        fetch: str | None = None,
        known: Known = None,
    ) -> None:
        self.client = client
        self.watch = watch
        self.folder = folder
        self.search = search
        self.fetch = fetch
        self.known = known  # for QRESYNC, as `examine` would send it
        self._asked: Asked | None = None

    @property
    def sent(self) -> bool:
        """Sent, and its answer not read yet."""
        return self._asked is not None

    def send(self) -> None:
        self._asked = self.client.examine_send(
            self.folder, self.search, self.fetch, known=self.known
        )

    def answer(self) -> Examined:
        """What `WatchedClient.examine_answer` gives, and raises; a FETCH sent with it is
        the caller's to read."""
        asked, self._asked = self._asked, None
        if asked is None:
            raise RuntimeError(f"the EXAMINE of {self.folder!r} was not sent, or was read")
        return self.client.examine_answer(asked)

    def settle(self) -> None:
        """Its answer read and dropped (not wanted after all), a FETCH sent with it too;
        the folder's own trouble is told if it is read. A lost connection raises."""
        if not self.sent:
            return
        try:  # a FETCH sent with it may be a whole folder's: the time a FETCH has
            with self.watch.deadline(f"EXAMINE {self.folder!r} sent ahead", 2):
                _drain(self.client, self.answer().prefetch)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            log.debug("the EXAMINE of %r sent ahead: %s", self.folder, exc)


def _drain(client: WatchedClient, prefetch: Prefetch | None) -> None:
    """A FETCH sent ahead and not wanted after all: its records read and dropped."""
    if prefetch is not None:
        try:
            read_fetch(connection(client), [prefetch.tag], lambda _record: None, MAX_LITERAL)
        except StreamError as exc:
            raise imaplib.IMAP4.abort(str(exc)) from None


class Selection:
    """The session's selected folder (`current`), the quick check's last EXAMINE, and an
    EXAMINE sent ahead. Errors are imaplib's; the session (imap.source) words them.

    With SEARCHRES, a folder known to be small enough to read `alone` (on this connection,
    without a worker: imap.headerfetch) has its header FETCH (`fetch` items) sent with its
    EXAMINE. Sizes are known from an EXAMINE's EXISTS, or the STATUS of the folder read
    next, asked with the EXAMINE before it: the whole folder read in one round trip."""

    def __init__(
        self,
        client: WatchedClient,
        watch: SocketWatch,
        fetch: str,
        alone: Callable[[int], bool],
    ) -> None:
        self.client = client
        self.watch = watch
        self.fetch = fetch
        self.alone = alone
        self.current: str | None = None
        self.sizes: dict[str, int] = {}  # messages in a folder, when last heard
        # The quick check's last EXAMINE: its folder, state, and QRESYNC's answer if any.
        self._last: tuple[str, FolderState, Resync | None] | None = None
        # Every folder the quick check found, and when: one it found unchanged is not asked
        # again by the read right after (`unchanged`).
        self._checked: tuple[float, dict[str, FolderState]] = (0.0, {})
        self._ahead: NextFolder | None = None

    def examine(
        self, folder: str, since: datetime | None = None, then: str | None = None
    ) -> tuple[FolderState, list[int], Prefetch | None]:
        """EXAMINE, and with `since` the UIDs from then on, asked in the same round trip
        (or sent ahead, and only read now), with their FETCH when the folder is known to
        be small (`Prefetch`: the caller reads it). `then`, the folder read next: its
        size is asked too, if not known."""
        state, examined = self._examine(folder, since, then, None)
        return state, examined.uids, examined.prefetch

    def _examine(
        self, folder: str, since: datetime | None, then: str | None, known: FolderState | None
    ) -> tuple[FolderState, Examined]:
        """`examine`'s; with `known`, the folder's state at the last poll, QRESYNC's answer
        comes too where the server offers it (`Examined.resync`)."""
        self._last = None
        self.current = None
        ahead, self._ahead = self._ahead, None
        search = search_since(since)
        with self.watch.deadline(f"EXAMINE {folder!r}"):  # and its SEARCH: one round trip
            if ahead is not None and (ahead.folder, ahead.search) == (folder, search):
                examined = ahead.answer()
            else:
                if ahead is not None:
                    ahead.settle()
                # A size is only wanted for a FETCH to send with an EXAMINE (SEARCHRES).
                wanted = self.client.searchres and then not in self.sizes
                status = then if then is not None and wanted else ""
                tail = None if search else self._tail(folder, known)
                fetch = self._fetch(folder, search) or (self.fetch if tail else None)
                asked = self.client.examine_send(folder, search, fetch, status, _known(known), tail)
                examined = self.client.examine_answer(asked)
                if examined.messages is not None:
                    self.sizes[status] = examined.messages
        self.current = folder
        state = folder_state(examined.info)
        self.sizes[folder] = state.exists or 0
        return state, examined

    def _tail(self, folder: str, known: FolderState | None) -> int | None:
        """The last UIDNEXT, to FETCH from with the EXAMINE of `folder`, when the quick check
        just found few UIDs new in it and QRESYNC's answer will tell which they are: the
        new headers come in the EXAMINE's round trip (0.1 s a poll at 100 ms RTT)."""
        at, found = self._checked
        now = found.pop(folder, None)
        if known is None or now is None or not heard_lately(at):
            return None
        if known.uidnext is None or now.uidnext is None or not self.client.resyncing:
            return None
        new = now.uidnext - known.uidnext  # UIDs given since (some may be gone again)
        return known.uidnext if new > 0 and self.alone(new) else None

    def drop(self, prefetch: Prefetch) -> None:
        """A FETCH sent with an EXAMINE and not wanted after all: read and dropped."""
        _drain(self.client, prefetch)

    def _fetch(self, folder: str, search: bytes) -> str | None:
        """The FETCH items to send with `folder`'s EXAMINE and `search`, if it is small."""
        size = self.sizes.get(folder)
        return self.fetch if search and size is not None and self.alone(size) else None

    def examine_each(
        self,
        folders: list[str],
        known: list[FolderState | None] | None = None,
        listing: bool = False,
    ) -> tuple[list[FolderState | imaplib.IMAP4.error], Listing | None]:
        """Each folder's state, or its EXAMINE's error, all asked in one write; the last
        stays selected and its state (and with `known`, what changed in it) is kept for
        `selected`. With `listing`, a LIST's answer comes back too (WatchedClient's)."""
        self.settle()
        self._last = None
        self.current = None
        if not folders:
            return [], None
        one = len(folders) == 1
        what = f"EXAMINE {folders[0]!r}" if one else f"EXAMINE of {len(folders)} folders"
        with self.watch.deadline(what, len(folders)):
            states_known = None if known is None else [_known(k) for k in known]
            answers, listed = self.client.examine_each(folders, states_known, listing)
        states = [a if isinstance(a, Exception) else folder_state(a.info) for a in answers]
        found = {f: s for f, s in zip(folders, states, strict=True) if isinstance(s, FolderState)}
        self.sizes.update((folder, state.exists or 0) for folder, state in found.items())
        self._checked = (time.monotonic(), found)
        last, answer = states[-1], answers[-1]
        if not isinstance(last, Exception) and not isinstance(answer, Exception):
            self.current = folders[-1]
            self._last = (folders[-1], last, answer.resync)
        return states, listed

    def unchanged(self, folder: str, known: FolderState | None) -> FolderState | None:
        """The quick check's state of `folder`, if it found it unchanged since `known` within
        FRESH seconds: a read has nothing to ask of it, not even an EXAMINE. Told once."""
        state = self._still(folder, known)
        if state is not None:
            del self._checked[1][folder]
        return state

    def _still(self, folder: str, known: FolderState | None) -> FolderState | None:
        at, found = self._checked
        state = found.get(folder)
        if state is None or not heard_lately(at) or not state.unchanged_since(known):
            return None
        return state

    def selected(
        self,
        folder: str,
        since: datetime | None,
        then: str | None = None,
        known: FolderState | None = None,
    ) -> tuple[FolderState, list[int] | None, Prefetch | None, Resync | None]:
        """The folder's state, from the quick check's EXAMINE when it was this folder's;
        else `examine`d, with the SEARCH SINCE `since` sent with it when wanted; and with
        `known`, what QRESYNC told of its changes since, if the server offers it."""
        last, self._last = self._last, None
        if last is not None and last[0] == folder:
            return last[1], None, None, last[2]
        state, examined = self._examine(folder, since, then, known)
        uids = None if since is None else examined.uids
        return state, uids, examined.prefetch, examined.resync

    @contextlib.contextmanager
    def behind(
        self, folder: str | None, since: datetime | None, known: FolderState | None = None
    ) -> Iterator[NextFolder | None]:
        """The EXAMINE of `folder` (None: none) for the header FETCH about to go, to send
        behind it (with `known`, its last state: QRESYNC); once sent, the selected folder
        is changing. Not one the quick check just found unchanged: nothing to read there."""
        self.settle()
        if folder is not None and self._still(folder, known) is not None:
            folder = None
        search = search_since(since)
        fetch = None if folder is None else self._fetch(folder, search)
        self._ahead = (
            None
            if folder is None
            else NextFolder(self.client, self.watch, folder, search, fetch, _known(known))
        )
        try:
            yield self._ahead
        finally:
            if self._ahead is None or not self._ahead.sent:
                self._ahead = None
            else:
                self.current = None

    def settle(self) -> None:
        """An EXAMINE sent ahead and not read is read before anything else is asked."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.settle()
