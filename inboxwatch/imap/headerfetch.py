"""The bulk header FETCH of a folder: streamed, with imapclient's generic reader as the
fallback, and for a big folder shared with a second connection (imap.worker).

Read-only: BODY.PEEK (RFC 3501 6.4.5) never sets \\Seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, ProtocolError
from imapclient.response_parser import parse_fetch_response

from inboxwatch.core.model import ParseFailure
from inboxwatch.core.parse import HEADER_FIELDS, parse_headers
from inboxwatch.core.ports import FolderScan, Progress
from inboxwatch.imap.answers import Prefetch
from inboxwatch.imap.fetchitems import FetchRecord, parse_fetch
from inboxwatch.imap.login import Secret, ServerLogin
from inboxwatch.imap.selection import NextFolder
from inboxwatch.imap.sets import batches, fetch_waves, uid_set
from inboxwatch.imap.slots import Release
from inboxwatch.imap.stream import StreamError, read_fetch
from inboxwatch.imap.transport import MAX_LITERAL
from inboxwatch.imap.watch import SocketWatch
from inboxwatch.imap.wire import WatchedClient, connection, send
from inboxwatch.imap.worker import FetchWorker
from inboxwatch.net import server_text

log = logging.getLogger(__name__)

BATCH = 500  # UIDs per generic FETCH: bounded memory, far below Dovecot's 64 KB command line
# UIDs per streamed FETCH: records are parsed as they arrive, so memory stays one read chunk;
# few round trips; a command line of at most ~60 KB even for scattered UIDs (12 bytes each).
STREAM_BATCH = 5000
PROGRESS_STEP = 1000  # records between two progress updates within a wave
# A folder with more messages to read than this is read over two connections: the last
# WORKER_SHARE of its UIDs by a worker process (imap.worker), which costs ~0.2 s to start.
PARALLEL_MIN = 10_000
WORKER_SHARE = 0.45
FETCH_ITEMS = [
    f"BODY.PEEK[HEADER.FIELDS ({' '.join(f.upper() for f in HEADER_FIELDS)})]",
    "FLAGS",
    "INTERNALDATE",
]
# Gmail (X-GM-EXT-1): each message's id, the same under every label, and its conversation's.
GMAIL_ITEMS = ["X-GM-MSGID", "X-GM-THRID"]


class HeaderFetcher:
    """Reads header records of one session's selected folder into a FolderScan."""

    def __init__(
        self,
        client: WatchedClient,
        watch: SocketWatch,
        login_as: tuple[ServerLogin, Secret] | None,
        gmail: bool = False,
        spare: Callable[[], Release | None] | None = None,
    ) -> None:
        self.client = client
        self.items = " ".join(FETCH_ITEMS + (GMAIL_ITEMS if gmail else []))
        self.watch = watch
        self.host = watch.host
        # The streamed FETCH, until a response shows a shape it does not take: one
        # surprise, and the session stops asking twice for the same headers.
        self._stream = True
        # For a big folder: what a worker needs to log in itself, and the worker once started.
        self._login_as = login_as
        self._worker: FetchWorker | None = None
        # A slot for the worker's connection under the per-server cap (imap.slots), taken
        # when it starts and given back when it ends; None: no cap.
        self._spare = spare
        self._slot: Release | None = None

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        self._free_slot()

    def _free_slot(self) -> None:
        if self._slot is not None:
            self._slot()
            self._slot = None

    def kill_worker(self) -> None:
        """From another thread: a worker mid-job is stopped (its pipe ends, collect returns)."""
        worker = self._worker
        if worker is not None:
            worker.proc.kill()

    def fetch(
        self,
        folder: str,
        uids: Sequence[int],
        since: datetime,
        scan: FolderScan,
        progress: Progress | None,
        uidvalidity: int,
        each: Callable[[FolderScan], None] | None = None,
        then: NextFolder | None = None,
        sent: Prefetch | None = None,
    ) -> None:
        """`uids` into `scan`; with `each`, handed to it STREAM_BATCH records at a time.
        `then` is sent behind the last FETCH of a folder read on this connection alone;
        `sent`, the FETCH of some of `uids` sent with the EXAMINE, is read first."""
        if progress is not None:
            progress.expect(len(uids))
        split = each is None and sent is None  # a FETCH sent ahead: a small folder
        theirs = self._hand_over(folder, uidvalidity, uids, since) if split else ()
        mine = uids[: len(uids) - len(theirs)]
        self._read(folder, mine, since, scan, progress, each, None if theirs else then, sent)
        if not theirs:
            return
        got = self._worker.collect() if self._worker is not None else "no worker"
        if isinstance(got, str):
            self._alone(got)
            self._read(folder, theirs, since, scan, progress)
            return
        scan.messages.extend(got[0])
        scan.failures.extend(got[1])
        if progress is not None:
            progress.advance(len(theirs))

    def _read(
        self,
        folder: str,
        uids: Sequence[int],
        since: datetime,
        scan: FolderScan,
        progress: Progress | None,
        each: Callable[[FolderScan], None] | None = None,
        then: NextFolder | None = None,
        sent: Prefetch | None = None,
    ) -> None:
        """`uids` on this session's own connection, STREAM_BATCH a command. The commands
        of a wave are sent together and answered in one read (pipelining, RFC 3501 5.5),
        so the link does not idle a round trip between batches: 0.1 s for every 5,000
        messages at 100 ms RTT. The FETCH `sent` with the EXAMINE is the first wave,
        already on its way. A response holding anything the strict reader does not
        expect was read to its end: what it did not give is fetched the generic way, as
        is everything after it on this session."""
        wanted, take = _taker(folder, since, scan, set(uids))
        if each is not None:
            take = _handing(take, scan, each)
        _take_early(sent, take)
        waves = _plan(uids, sent, self.items)
        for index, (commands, size, ahead) in enumerate(waves):
            if not (self._stream or ahead):
                break
            behind = then if index == len(waves) - 1 else None
            if progress is None:  # no wrapper on each record of a poll nobody watches
                self._answer(commands, size, take, behind, ahead)
                continue
            steps = _Steps(take, progress, size)
            self._answer(commands, size, steps, behind, ahead)
            if size > steps.done:  # UIDs yet untold of: the rest
                progress.advance(size - steps.done)
        # A FETCH `$` that left out some of its SEARCH's UIDs: expunged meanwhile, or a
        # server's SEARCHRES amiss. They are asked for by UID, so none is missed.
        holes = sent is not None and not wanted.isdisjoint(sent.uids)
        if not self._stream or holes:
            _reselect(self.client, folder, then)
            left = sorted(wanted)  # also any UID expunged since: asking again costs nothing
            for batch in batches(left, BATCH):
                self._generic_batch(folder, batch, take, scan)
            if progress is not None and not self._stream:
                progress.advance(len(left))
        if each is not None and (scan.messages or scan.failures):
            each(FolderScan(folder, scan.messages, scan.failures))
            scan.messages, scan.failures = [], []

    def _answer(
        self,
        commands: list[bytes],
        size: int,
        take: Callable[[FetchRecord], None],
        behind: NextFolder | None = None,
        ahead: bool = False,
    ) -> None:
        """The bulk header FETCH of a wave of `commands` for `size` UIDs (`ahead`: sent
        already, `commands` is its tag). imapclient's generic response parser costs more
        than the server itself here, so the response is read as a stream by a strict
        reader (imap.stream) and each record parsed as it arrives, while the server goes
        on writing."""
        imap = connection(self.client)
        times = max(len(commands), -(-size // STREAM_BATCH))
        try:  # each batch of the wave has the time one batch alone has
            with self.watch.deadline(f"FETCH of {size} headers", times):
                tags = commands if ahead else send(imap, *commands)
                if behind is not None:
                    behind.send()
                answered = read_fetch(imap, tags, take, MAX_LITERAL)
        except StreamError as exc:
            raise IMAPClientAbortError(str(exc)) from None
        if answered is None:  # this server's answers take the generic way from now on
            log.debug("%s: unexpected FETCH response shape; reading it the generic way", self.host)
            self._stream = False
            return
        for status, text in answered.values():
            if status != "OK":
                words = text.decode("utf-8", "replace")
                raise IMAPClientError(f"FETCH failed: {status} {words}")

    def alone(self, count: int) -> bool:
        """Whether a folder of `count` messages is read on this connection alone."""
        return self._login_as is None or count <= PARALLEL_MIN

    def _hand_over(
        self, folder: str, uidvalidity: int, uids: Sequence[int], since: datetime
    ) -> Sequence[int]:
        """The last WORKER_SHARE of a big folder's `uids`, given to the worker; () if none."""
        login_as = self._login_as
        if login_as is None or self.alone(len(uids)):
            return ()
        if self._worker is not None and not self._worker.alive():
            self.close()  # it left after worker.IDLE_EXIT without a job: start another
        if self._worker is None:
            if self._spare is not None:
                self._slot = self._spare()
                if self._slot is None:
                    return ()  # the server's connections are all in use: this folder alone
            try:
                self._worker = FetchWorker(*login_as)
            except OSError as exc:  # no interpreter to start, no process left
                self._alone(str(exc))
                return ()
        theirs = uids[len(uids) - int(len(uids) * WORKER_SHARE) :]
        if self._worker.submit(folder, uidvalidity, theirs, since):
            return theirs
        self._alone("it did not take the job")
        return ()

    def _alone(self, why: str) -> None:
        """A worker's failure only costs time: this session reads alone from now on."""
        log.debug("%s: second connection failed (%s); reading alone", self.host, why)
        if self._worker is not None:
            self._worker.abandon()
            self._worker = None
        self._free_slot()
        self._login_as = None

    def _generic_batch(
        self,
        folder: str,
        uids: Sequence[int],
        take: Callable[[FetchRecord], None],
        scan: FolderScan,
    ) -> None:
        try:
            with self.watch.deadline(f"FETCH of {len(uids)} headers"):
                records, unusable = self._generic_records(uids)
        except (ProtocolError, ValueError, TypeError, OverflowError) as exc:
            # One malformed FETCH response: that batch is reported, the others go on.
            log.warning(
                "%s: malformed FETCH response for %d message(s) in %s: %s",
                self.host,
                len(uids),
                folder,
                exc,
            )
            reason = f"the server sent a malformed FETCH response ({str(exc)[:80]})"
            scan.failures.extend(ParseFailure(folder, uid, reason) for uid in uids)
            return
        for record in records:
            take(record)
        reason = "the server's FETCH response has no usable INTERNALDATE for it"
        scan.failures.extend(ParseFailure(folder, uid, reason) for uid in unusable)

    def _generic_records(self, uids: Sequence[int]) -> tuple[list[FetchRecord], list[int]]:
        """Records, and the requested UIDs whose header came without a usable date."""
        imap = connection(self.client)
        typ, data = imap.uid("FETCH", uid_set(uids), f"({self.items})")
        if typ != "OK":
            raise IMAPClientError(f"FETCH failed: {server_text(IMAPClientError(data))}")
        records = parse_fetch(data)
        if records is not None:
            return records, []
        out: list[FetchRecord] = []
        unusable = []
        for uid, item in parse_fetch_response(data, False, True).items():
            header = next((v for k, v in item.items() if k.startswith(b"BODY[")), None)
            date = item.get(b"INTERNALDATE")
            if header is not None and isinstance(date, datetime):
                flags = frozenset(f.decode("ascii", "replace") for f in item.get(b"FLAGS", ()))
                ids = (str(item.get(b"X-GM-MSGID") or ""), str(item.get(b"X-GM-THRID") or ""))
                out.append((uid, bytes(header), flags, date, ids))
            elif header is not None and uid in uids:
                unusable.append(uid)
        return out, unusable


def _take_early(sent: Prefetch | None, take: Callable[[FetchRecord], None]) -> None:
    """The records of the FETCH `sent` with the EXAMINE that imaplib kept (`Prefetch.early`)."""
    if sent is not None and sent.early:
        for record in parse_fetch(sent.early) or []:
            take(record)


def _plan(
    uids: Sequence[int], sent: Prefetch | None, items: str
) -> list[tuple[list[bytes], int, bool]]:
    """The waves of FETCH commands for `uids`: their commands, their size, and whether
    the wave was sent already (the FETCH `sent` with the EXAMINE, then: its tag)."""
    skip = set() if sent is None else set(sent.uids)
    rest = [uid for uid in uids if uid not in skip] if skip else uids
    waves = [
        ([command for command, _ in wave], sum(n for _, n in wave), False)
        for wave in fetch_waves([*batches(rest, STREAM_BATCH)], items)
    ]
    return waves if sent is None else [([sent.tag], len(sent.uids), True), *waves]


def _reselect(client: WatchedClient, folder: str, then: NextFolder | None) -> None:
    """Before the generic way reads `folder` again: the next folder's EXAMINE, if sent
    behind a FETCH, has selected that folder; it is read, and `folder` selected back."""
    if then is not None and then.sent:
        then.settle()
        client.examine(folder)


class _Steps:
    """`take`, telling `progress` of every PROGRESS_STEP records (a wave is one read), never
    of more than the wave's `size`; `done` is what it told."""

    def __init__(self, take: Callable[[FetchRecord], None], progress: Progress, size: int) -> None:
        self.take, self.progress, self.size = take, progress, size
        self.seen = self.done = 0

    def __call__(self, record: FetchRecord) -> None:
        self.take(record)
        self.seen += 1
        if self.seen - self.done == PROGRESS_STEP and self.seen <= self.size:
            self.progress.advance(PROGRESS_STEP)
            self.done += PROGRESS_STEP


def _handing(
    take: Callable[[FetchRecord], None], scan: FolderScan, each: Callable[[FolderScan], None]
) -> Callable[[FetchRecord], None]:
    """`take`, handing `scan`'s records to `each` every STREAM_BATCH of them."""

    def handing(record: FetchRecord) -> None:
        take(record)
        if len(scan.messages) + len(scan.failures) >= STREAM_BATCH:
            each(FolderScan(scan.folder, scan.messages, scan.failures))
            scan.messages, scan.failures = [], []

    return handing


def _taker(
    folder: str, since: datetime, scan: FolderScan, wanted: set[int]
) -> tuple[set[int], Callable[[FetchRecord], None]]:
    """Each fetched record, once, parsed into `scan` (or counted there as a failure);
    `wanted` shrinks as records are taken."""

    def take(record: FetchRecord) -> None:
        uid, header, flags, internaldate, ids = record
        if uid not in wanted:
            return  # an unsolicited FETCH, or a record already taken
        wanted.discard(uid)
        try:
            received = _utc(internaldate)
        except (OverflowError, ValueError):  # a server's impossible INTERNALDATE
            scan.failures.append(ParseFailure(folder, uid, "INTERNALDATE out of range"))
            return
        if received < since:
            return
        meta = parse_headers(header, folder, uid, received, flags)
        if isinstance(meta, ParseFailure):
            scan.failures.append(meta)
        elif not (ids[0] or ids[1]):
            scan.messages.append(meta)
        else:
            scan.messages.append(meta._replace(provider_id=ids[0], thread_hint=ids[1]))

    return wanted, take


def _utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value  # the streamed reader's dates come in UTC already
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
