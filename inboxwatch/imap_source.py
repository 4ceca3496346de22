"""The IMAP source: the only module that imports imapclient.

Read-only by construction: folders are opened with EXAMINE (`readonly=True`),
headers are fetched with BODY.PEEK (RFC 3501 6.4.5: no implicit \\Seen), and
no STORE, COPY, MOVE, EXPUNGE, APPEND, CREATE, DELETE or RENAME is ever sent.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime, timedelta

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError, ProtocolError
from imapclient.response_parser import parse_fetch_response

from inboxwatch.config import Account
from inboxwatch.errors import ConfigError, ServerError
from inboxwatch.fastpath import FetchRecord, parse_fetch
from inboxwatch.fetchstream import StreamError, batches, read_fetch, uid_set
from inboxwatch.model import ParseFailure
from inboxwatch.parse import HEADER_FIELDS, parse_headers
from inboxwatch.servers import is_loopback, login_error, server_text, throttled, tls_context
from inboxwatch.source import FolderInfo, FolderScan, FolderState, FolderSync, Progress

log = logging.getLogger(__name__)

BATCH = 500  # UIDs per generic FETCH: bounded memory, far below Dovecot's 64 KB command line
# UIDs per streamed FETCH: records are parsed as they arrive, so memory stays one read chunk;
# few round trips; a command line of at most ~60 KB even for scattered UIDs (12 bytes each).
STREAM_BATCH = 5000
_FETCH_ITEMS = [
    f"BODY.PEEK[HEADER.FIELDS ({' '.join(f.upper() for f in HEADER_FIELDS)})]",
    "FLAGS",
    "INTERNALDATE",
]
# A header block is small; a server announcing a far bigger literal is broken or hostile,
# and imaplib would allocate the announced size up front.
MAX_LITERAL = 32 * 1024 * 1024


def _network_error(host: str, exc: BaseException, timeout: float) -> ServerError:  # noqa: PLR0911
    """One actionable line for a failure to reach or talk to the server."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or str(exc)
        return ServerError(
            f"TLS certificate of {host} not trusted ({why}); for a private CA set ca_file"
        )
    if isinstance(exc, ssl.SSLError):
        return ServerError(f"TLS handshake with {host} failed ({exc.reason or exc})")
    if isinstance(exc, socket.gaierror):
        return ServerError(f"cannot resolve {host}; check the host name and your network")
    if isinstance(exc, ConnectionRefusedError):
        return ServerError(f"{host} refused the connection; check host, port and security")
    if isinstance(exc, TimeoutError):
        return ServerError(f"{host} did not answer within {timeout:g}s; try again later")
    if isinstance(exc, IMAPClientAbortError | ConnectionError | EOFError):
        return ServerError(f"connection to {host} dropped ({exc}); try again later")
    return ServerError(f"cannot talk to {host}: {exc}")


class ImapSource:
    """A logged-in, read-only IMAP session for one account."""

    def __init__(self, account: Account, password: str) -> None:
        self.host = account.host
        self.timeout = account.timeout.total_seconds()
        self._last_examined: tuple[str, FolderState] | None = None
        # The streamed FETCH, until a response shows a shape it does not take: one
        # surprise, and the session stops asking twice for the same headers.
        self._stream = True
        self.client = self._connect(account)
        try:
            self._login(account.username, password)
        except BaseException:
            self._shutdown()
            raise

    def _connect(self, account: Account) -> IMAPClient:
        if account.security == "plain" and not (
            is_loopback(account.host) or account.allow_insecure
        ):
            raise ConfigError(
                f"accounts[{account.name}].security: plain IMAP sends the password in clear; "
                "use tls or starttls, or set allow_insecure = true"
            )
        # Loading the system trust store costs ~25 ms: not for a plain loopback session.
        context = None if account.security == "plain" else tls_context(account.ca_file)
        try:
            client = IMAPClient(
                account.host,
                port=account.port,
                ssl=account.security == "tls",
                ssl_context=context,
                timeout=SocketTimeout(connect=self.timeout, read=self.timeout),
            )
            client.normalise_times = False  # keep INTERNALDATE's own offset; we convert to UTC
            _bound_literals(client)
            if context is not None and account.security == "starttls":
                self._starttls(client, context)
        except (OSError, IMAPClientError, EOFError) as exc:
            raise _network_error(account.host, exc, self.timeout) from exc
        return client

    def _starttls(self, client: IMAPClient, context: ssl.SSLContext) -> None:
        if b"STARTTLS" not in client.capabilities():
            client.shutdown()
            raise ServerError(
                f"{self.host} does not offer STARTTLS; refusing to send the password in clear "
                '(use security = "tls" on port 993 if the server supports it)'
            )
        client.starttls(context)

    def _login(self, username: str, password: str) -> None:
        try:
            self.client.login(username, password)
            if b"CONDSTORE" in self.client.capabilities():
                # RFC 7162 3.1: HIGHESTMODSEQ on SELECT lets an unchanged folder cost one command.
                self.client.enable("CONDSTORE")
        except LoginError as exc:
            raise login_error(self.host, server_text(exc)) from None
        except (OSError, IMAPClientError, EOFError) as exc:
            raise _network_error(self.host, exc, self.timeout) from exc

    def _shutdown(self) -> None:
        with contextlib.suppress(OSError, IMAPClientError):
            self.client.shutdown()

    def close(self) -> None:
        try:
            self.client.logout()
        except (OSError, IMAPClientError, EOFError):
            self._shutdown()

    def list_folders(self) -> list[FolderInfo]:
        """Every folder with its SPECIAL-USE flags; imapclient decodes modified UTF-7."""
        try:
            listing = self.client.list_folders()
        except (OSError, IMAPClientError, EOFError) as exc:
            raise _network_error(self.host, exc, self.timeout) from exc
        folders = []
        for flags, _delimiter, name in listing:
            names = frozenset(f.decode("ascii", "replace") for f in flags)
            lowered = {f.lower() for f in names}
            folders.append(
                FolderInfo(str(name), names, not ({"\\noselect", "\\nonexistent"} & lowered))
            )
        return folders

    def fetch_since(
        self, folder: str, since: datetime, progress: Progress | None = None
    ) -> FolderScan:
        """Header fields, FLAGS and INTERNALDATE of every message from `since` on."""
        with self._guard(folder):
            self._last_examined = None  # another folder is selected now
            self.client.select_folder(folder, readonly=True)
            scan = FolderScan(folder)
            self._fetch_headers(folder, self._search_since(since), since, scan, progress)
        return scan

    def sync_folder(
        self,
        folder: str,
        since: datetime,
        known: FolderState | None,
        cached: Collection[int],
        progress: Progress | None = None,
    ) -> FolderSync:
        """Only what changed since `known`: new UIDs, flag changes, expunged UIDs.

        Flag changes come from SEARCH MODSEQ (CONDSTORE, RFC 7162) where offered,
        else from FLAGS of the cached UIDs. New mail is `UID SEARCH UID <uidnext>:*`;
        when the message count grew by exactly that many, nothing was expunged (UIDs
        only grow, RFC 3501 2.3.1.1), so the whole lookback is searched only when
        the count says something went away.
        """
        with self._guard(folder):
            state = self._selected(folder)
            if state.unchanged_since(known):
                return FolderSync(folder, state, replace=False)
            replace = known is None or known.uidvalidity != state.uidvalidity
            sync = FolderSync(folder, state, replace)
            previous = set() if replace else set(cached)
            arrived = None if replace else self._arrived(known, state)
            if arrived is not None:
                current = previous | set(arrived)
            else:
                current = set(self._search_since(since))
                sync.gone = previous - current
            if not replace:
                sync.flags = self._changed_flags(known, state, sorted(previous & current))
            scan = FolderScan(folder)
            self._fetch_headers(folder, sorted(current - previous), since, scan, progress)
            sync.new, sync.failures = scan.messages, scan.failures
        return sync

    def _arrived(self, known: FolderState | None, state: FolderState) -> list[int] | None:
        """UIDs new since `known`, or None when messages may also have gone."""
        if known is None or known.uidnext is None or known.exists is None or state.exists is None:
            return None
        # `n:*` always matches the highest UID, even below n (RFC 3501 6.4.8): filter.
        found = [u for u in self.client.search(["UID", f"{known.uidnext}:*"]) if u >= known.uidnext]
        return found if state.exists == known.exists + len(found) else None

    @contextlib.contextmanager
    def _guard(self, folder: str) -> Iterator[None]:
        try:
            yield
        except (OSError, IMAPClientAbortError, EOFError) as exc:
            raise _network_error(self.host, exc, self.timeout) from exc
        except IMAPClientError as exc:
            text = server_text(exc)
            raise throttled(self.host, text) or ServerError(
                f"{self.host}: reading folder {folder!r} failed: {text}"
            ) from exc

    def examine(self, folder: str) -> FolderState:
        """The folder's state on EXAMINE (read-only SELECT). The folder stays selected, and
        a `sync_folder` of it that comes next uses this state instead of asking again
        (Dovecot re-reads a large maildir's directory on every EXAMINE: ~0.1 s)."""
        with self._guard(folder):
            self._last_examined = (folder, self._examine(folder))
            return self._last_examined[1]

    def _selected(self, folder: str) -> FolderState:
        last, self._last_examined = self._last_examined, None
        if last is not None and last[0] == folder:
            return last[1]
        return self._examine(folder)

    def _examine(self, folder: str) -> FolderState:
        self._last_examined = None
        info = self.client.select_folder(folder, readonly=True)
        modseq = info.get(b"HIGHESTMODSEQ")
        return FolderState(
            int(info[b"UIDVALIDITY"]),
            int(info.get(b"UIDNEXT") or 0) or None,
            int(modseq) if modseq else None,
            int(info.get(b"EXISTS") or 0),
        )

    def _search_since(self, since: datetime) -> list[int]:
        # SEARCH SINCE has day granularity in the server's zone (RFC 3501
        # 6.4.4): ask a day early, then filter on INTERNALDATE exactly.
        return sorted(self.client.search(["SINCE", (since - timedelta(days=1)).date()]))

    def _fetch_headers(
        self,
        folder: str,
        uids: Sequence[int],
        since: datetime,
        scan: FolderScan,
        progress: Progress | None,
    ) -> None:
        if progress is not None:
            progress.expect(len(uids))
        for chunk in batches(uids, STREAM_BATCH):
            self._fetch_chunk(folder, chunk, since, scan)
            if progress is not None:
                progress.advance(len(chunk))

    def _fetch_chunk(
        self, folder: str, uids: Sequence[int], since: datetime, scan: FolderScan
    ) -> None:
        """The bulk header FETCH. imapclient's generic response parser costs more than the
        server itself here, so the response is read as a stream by a strict reader
        (fetchstream) and each record parsed as it arrives, while the server goes on
        writing. A response holding anything the reader does not expect is read to its
        end, and the UIDs not yet taken are fetched again the generic way."""
        wanted = set(uids)
        take = _taker(folder, since, scan, wanted)
        command = f"UID FETCH {uid_set(uids)} ({' '.join(_FETCH_ITEMS)})".encode("ascii")
        try:
            status = (
                read_fetch(self.client._imap, command, take, MAX_LITERAL) if self._stream else None
            )
        except StreamError as exc:
            raise IMAPClientAbortError(str(exc)) from None
        if status is None:
            if self._stream:  # this server's answers take the generic way from now on
                log.debug(
                    "%s: unexpected FETCH response shape; reading it the generic way", self.host
                )
                self._stream = False
            for batch in batches(sorted(wanted), BATCH):
                self._generic_batch(folder, batch, take, scan)
        elif status[0] != "OK":
            text = status[1].decode("utf-8", "replace")
            raise IMAPClientError(f"FETCH failed: {status[0]} {text}")

    def _generic_batch(
        self,
        folder: str,
        uids: Sequence[int],
        take: Callable[[FetchRecord], None],
        scan: FolderScan,
    ) -> None:
        try:
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
        imap = self.client._imap
        typ, data = imap.uid("FETCH", uid_set(uids), f"({' '.join(_FETCH_ITEMS)})")
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
                out.append((uid, bytes(header), flags, date))
            elif header is not None and uid in uids:
                unusable.append(uid)
        return out, unusable

    def _changed_flags(
        self, known: FolderState | None, state: FolderState, uids: Sequence[int]
    ) -> dict[int, frozenset[str]]:
        if known is not None and known.modseq is not None and state.modseq is not None:
            changed = set(self.client.search(["MODSEQ", str(known.modseq + 1)]))
            uids = [uid for uid in uids if uid in changed]
        flags: dict[int, frozenset[str]] = {}
        for batch in batches(uids, BATCH * 4):
            wanted = set(batch)
            for uid, data in self.client.fetch(batch, ["FLAGS"]).items():
                if uid in wanted and b"FLAGS" in data:
                    flags[uid] = frozenset(f.decode("ascii", "replace") for f in data[b"FLAGS"])
        return flags


def _taker(
    folder: str, since: datetime, scan: FolderScan, wanted: set[int]
) -> Callable[[FetchRecord], None]:
    """Each fetched record, once, parsed into `scan` (or counted there as a failure)."""

    def take(record: FetchRecord) -> None:
        uid, header, flags, internaldate = record
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
        else:
            scan.messages.append(meta)

    return take


def _bound_literals(client: IMAPClient) -> None:
    """Refuse a literal over MAX_LITERAL before imaplib allocates it (bounded memory)."""
    imap = client._imap
    read = imap.read

    def guarded(size: int) -> bytes:
        if size > MAX_LITERAL:
            # The stream cannot be resynchronised after a refused literal: drop it.
            raise IMAPClientAbortError(
                f"server announced a {size:,}-byte literal (limit "
                f"{MAX_LITERAL:,}); refusing to read it"
            )
        data: bytes = read(size)
        return data

    imap.read = guarded


def _utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value  # the streamed reader's dates come in UTC already
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
