"""The IMAP source's session. The `imap` package is the only importer of imapclient and
imaplib; imaplib's private parts are touched in `imap.wire` alone.

Read-only by construction: folders are opened with EXAMINE (`readonly=True`),
headers are fetched with BODY.PEEK (RFC 3501 6.4.5: no implicit \\Seen), and
no STORE, COPY, MOVE, EXPUNGE, APPEND, CREATE, DELETE or RENAME is ever sent.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime

from imapclient import SocketTimeout
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from inboxwatch.core.bodytext import Details
from inboxwatch.core.ports import Answer, FolderInfo, FolderScan, FolderState, FolderSync, Progress
from inboxwatch.errors import AuthError, ConfigError, ServerError
from inboxwatch.imap.bodyfetch import ask_details, details_answer
from inboxwatch.imap.changes import changed_since, search_uids
from inboxwatch.imap.failures import network_error
from inboxwatch.imap.headerfetch import HeaderFetcher
from inboxwatch.imap.login import Secret, ServerLogin
from inboxwatch.imap.sasl import xoauth2
from inboxwatch.imap.selection import Selection, heard_lately
from inboxwatch.imap.slots import Release
from inboxwatch.imap.watch import SocketWatch
from inboxwatch.imap.wire import Listing, WatchedClient, connection, send
from inboxwatch.net import (
    is_loopback,
    keep_alive,
    login_error,
    operation_deadline,
    server_text,
    throttled,
    tls_context,
)

log = logging.getLogger(__name__)


class ImapSource:
    """A logged-in, read-only IMAP session for one account."""

    def __init__(
        self,
        account: ServerLogin,
        secret: Secret,
        worker: bool = True,
        spare: Callable[[], Release | None] | None = None,
        resync: bool = False,
    ) -> None:
        self.host = account.host
        self.account = account.name
        self.timeout = account.timeout.total_seconds()
        # The LIST sent with a password LOGIN (WatchedClient.login_listing) or a quick check,
        # for the first list_folders() if it comes within FRESH (a scan's; the read after
        # a quick check: one round trip less), with when it was answered; a fetch worker
        # (worker=False) never lists.
        self._listing: tuple[float, Listing] | None = None
        self.watch = SocketWatch(self.host, operation_deadline(self.timeout))
        with self.watch.deadline("connecting and logging in"):
            self.client = self._connect(account)
            try:
                # A session that polls (service.sessions) syncs folders it knows: QRESYNC.
                self.client.qresync = resync
                used = self._login(account.username, secret, list_early=worker)
                if b"QRESYNC" not in self.client.capabilities():
                    self.client.qresync = self.client.resyncing = False
            except BaseException:
                self._shutdown()
                raise
        # A worker for a big folder logs in as we did (worker=False: the worker itself).
        login_as = (account, Secret(used, secret.bearer)) if worker else None
        # Gmail's extension (X-GM-EXT-1): its message and conversation ids come with the
        # headers, to count a message filed under several labels once and to thread by
        # Gmail's own conversations too (core.threads).
        gmail = b"X-GM-EXT-1" in self.client.capabilities()
        self.headers = HeaderFetcher(self.client, self.watch, login_as, gmail, spare)
        self.selection = Selection(self.client, self.watch, self.headers.items, self.headers.alone)

    def _connect(self, account: ServerLogin) -> WatchedClient:
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
            client = WatchedClient(
                self.watch,
                account.host,
                port=account.port,
                ssl=account.security == "tls",
                ssl_context=context,
                timeout=SocketTimeout(connect=self.timeout, read=self.timeout),
            )
            client.normalise_times = False  # keep INTERNALDATE's own offset; we convert to UTC
            client.compress = account.compress  # COMPRESS DEFLATE once logged in
            keep_alive(client.socket())  # kept between polls by the service
            # imapclient writes a command and its CRLF apart: with Nagle's algorithm (RFC
            # 896) on, the CRLF waits for the first part's ACK, which the server delays
            # (RFC 1122 4.2.3.2): up to a round trip more for each command on a real link.
            client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if context is not None and account.security == "starttls":
                self._starttls(client, context)
        except (OSError, IMAPClientError, EOFError) as exc:
            raise network_error(account.host, exc, self.timeout) from exc
        return client

    def _starttls(self, client: WatchedClient, context: ssl.SSLContext) -> None:
        if b"STARTTLS" not in client.capabilities():
            client.shutdown()
            raise ServerError(
                f"{self.host} does not offer STARTTLS; refusing to send the password in clear "
                '(use security = "tls" on port 993 if the server supports it)'
            )
        client.starttls(context)

    def _login(self, username: str, secret: Secret, list_early: bool) -> str:
        """Log in (with a password and `list_early`, the LIST sent along); returns the
        password or token that worked."""
        try:
            if secret.bearer:
                used = self._xoauth2(username, secret)
            else:
                used = secret.value
                if list_early:
                    listing = self.client.login_listing(username, secret.value)
                    self._listing = None if listing is None else (time.monotonic(), listing)
                else:
                    self.client.login(username, secret.value)
            self.client.deflate()  # COMPRESS, where wanted and not sent with the LOGIN
            # RFC 7162 3.1: HIGHESTMODSEQ on EXAMINE lets an unchanged folder cost one command.
            self.client.condstore = b"CONDSTORE" in self.client.capabilities()
            self.client.searchres = b"SEARCHRES" in self.client.capabilities()
        except LoginError as exc:
            # imapclient turns every failure of LOGIN into LoginError, a dropped connection
            # (imaplib's abort: "socket error: EOF") and our refused literal too. Only the
            # server's own refusal, a tagged NO (RFC 3501 6.2.3), is a wrong password.
            # (imaplib wraps socket errors in its abort, so the abort is all there is to see.)
            if isinstance(exc.__context__, IMAPClientAbortError):
                raise network_error(self.host, exc.__context__, self.timeout) from exc
            raise login_error(self.host, server_text(exc)) from None
        except (OSError, IMAPClientError, EOFError) as exc:
            raise network_error(self.host, exc, self.timeout) from exc
        return used

    def _xoauth2(self, username: str, secret: Secret) -> str:
        """The token, and once more a renewed one when the server refuses it (expired early,
        revoked access token): the refresh token may well still be good."""
        token = secret.value
        refused = self._refused(username, token)
        if refused is not None and secret.renew is not None:
            token = secret.renew(token)
            refused = self._refused(username, token)
        if refused is not None:
            raise AuthError(
                f"{self.host} refused the OAuth token ({refused}); check the app's IMAP "
                "permission and that IMAP is enabled for this mailbox (README FAQ), or sign "
                "in again with `inboxwatch auth`"
            )
        return token

    def _refused(self, username: str, token: str) -> str | None:
        """None when the server took the token, else its words."""
        try:
            xoauth2(self.client, username, token)
        except IMAPClientAbortError:
            raise  # the connection, not the token
        except IMAPClientError as exc:
            return server_text(exc)
        return None

    def _shutdown(self) -> None:
        with contextlib.suppress(OSError, IMAPClientError):
            self.client.shutdown()

    def rest(self) -> None:
        """Between polls: a big folder's worker (and its server slot) is let go; the
        next big read starts another."""
        self.headers.close()

    def alive(self) -> bool:
        """A NOOP answered: the server has not dropped this session while it idled."""
        try:
            with self.watch.deadline("NOOP"):
                self.client.noop()
        except (OSError, IMAPClientError, EOFError, ServerError):
            return False
        return True

    def close(self) -> None:
        """LOGOUT, and the connection closed without waiting for the answer: the server ends
        the session on reading it (RFC 3501 6.1.3), and nothing is left to learn from its
        BYE. Waiting cost a round trip at the end of every scan (0.1 s at 100 ms RTT)."""
        self.headers.close()
        failed = (OSError, IMAPClientError, EOFError, ServerError)
        with contextlib.suppress(*failed), self.watch.deadline("LOGOUT"):
            send(connection(self.client), b"LOGOUT")
        self._shutdown()

    def compression(self) -> tuple[bool, bool]:
        """Whether the server offers COMPRESS=DEFLATE, and whether this session took it."""
        try:
            with self.watch.deadline("CAPABILITY"):
                offered = b"COMPRESS=DEFLATE" in self.client.capabilities()
        except (OSError, IMAPClientError, EOFError) as exc:
            raise network_error(self.host, exc, self.timeout) from exc
        return offered, connection(self.client).deflater is not None

    def abort(self) -> None:
        """From another thread (a poll past its deadline): fail what the session waits for."""
        self.headers.kill_worker()
        self.watch.shutdown()

    def _fresh(self) -> Listing | None:
        """The LIST answer heard with the LOGIN or a quick check, if within FRESH seconds."""
        heard = self._listing
        return heard[1] if heard is not None and heard_lately(heard[0]) else None

    def list_folders(self) -> list[FolderInfo]:
        """Every folder with its SPECIAL-USE flags; imapclient decodes modified UTF-7."""
        listing, self._listing = self._fresh(), None  # used once
        try:
            self.selection.settle()
            if listing is None:
                with self.watch.deadline("LIST"):
                    listing = self.client.list_folders()
        except (OSError, IMAPClientError, EOFError) as exc:
            raise network_error(self.host, exc, self.timeout) from exc
        folders = []
        for flags, _delimiter, name in listing:
            names = frozenset(f.decode("ascii", "replace") for f in flags)
            lowered = {f.lower() for f in names}
            folders.append(
                FolderInfo(str(name), names, not ({"\\noselect", "\\nonexistent"} & lowered))
            )
        return folders

    def fetch_since(
        self,
        folder: str,
        since: datetime,
        progress: Progress | None = None,
        then: str | None = None,
    ) -> FolderScan:
        """Header fields, FLAGS and INTERNALDATE of every message from `since` on; `then`,
        the folder read next, is examined behind the last FETCH (imap.selection)."""
        with self._guard(folder):
            state, uids, sent = self.selection.examine(folder, since, then)
            scan = FolderScan(folder)
            with self.selection.behind(then, since) as ahead:
                self.headers.fetch(
                    folder, uids, since, scan, progress, state.uidvalidity, then=ahead, sent=sent
                )
        return scan

    def ask_details(self, folder: str, uids: Sequence[int]) -> Answer:
        """A little of each message's body, for the closing and invitation checks: the
        FETCH is sent now and read when the answer is called (imap.bodyfetch)."""
        if not uids:
            return dict
        preview = b"PREVIEW" in self.client.capabilities()  # RFC 8970 (Dovecot 2.3.17+)
        with self._guard(folder):
            if folder != self.selection.current:  # a scan's last folder is still selected
                self.selection.selected(folder, None)  # no SEARCH: no FETCH sent with it
            asked = ask_details(self.client, uids, preview)

        def answer() -> dict[int, Details]:
            with self._guard(folder):
                return details_answer(self.client, asked, self.watch.deadline)

        return answer

    def fetch_uids(
        self,
        folder: str,
        uidvalidity: int,
        uids: Sequence[int],
        since: datetime,
        each: Callable[[FolderScan], None],
    ) -> None:
        """A worker's job: these UIDs, if the folder still has that UIDVALIDITY, handed to
        `each` at most STREAM_BATCH records at a time (the caller keeps each only as long
        as it needs) while the FETCHes are pipelined."""
        with self._guard(folder):
            if self.selection.examine(folder)[0].uidvalidity != uidvalidity:  # no FETCH sent
                raise ServerError(f"{folder!r} changed its UIDVALIDITY; its UIDs are stale")
            self.headers.fetch(folder, uids, since, FolderScan(folder), None, uidvalidity, each)

    def sync_folder(
        self,
        folder: str,
        since: datetime,
        known: FolderState | None,
        cached: Collection[int],
        progress: Progress | None = None,
        then: tuple[str | None, datetime | None, FolderState | None] = (None, None, None),
    ) -> FolderSync:
        """Only what changed since `known`: new UIDs, flag changes, expunged UIDs.

        With QRESYNC (RFC 7162 3.2) the EXAMINE itself answers all three (imap.resync).
        Else flag changes come from one FETCH CHANGEDSINCE (CONDSTORE) where offered, or
        from FLAGS of the cached UIDs (imap.flags), and new mail and expunges are found by
        UID (imap.changes). The lookback is searched by date only on a first read.
        """
        same = self.unchanged(folder, known)
        if same is not None:  # the quick check just found it so
            return same
        with self._guard(folder):
            # A first read (nothing known) asks its SEARCH with the EXAMINE.
            first = since if known is None else None
            # The next folder's size is asked only if it too is read whole (its own SEARCH).
            nxt = then[0] if then[1] is not None else None
            state, searched, sent, resync = self.selection.selected(folder, first, nxt, known)
            replace = known is None or known.uidvalidity != state.uidvalidity
            if known and sent and (replace or state.unchanged_since(known)):
                self.selection.drop(sent)  # new mail's FETCH, sent with the EXAMINE: none
                sent = None
            if state.unchanged_since(known):
                return FolderSync(folder, state, replace=False)
            if known is not None and replace:
                _renumbered(self.account, folder, known, state)
            sync = FolderSync(folder, state, replace)
            previous = set() if replace else set(cached)
            if replace or known is None:
                current = set(
                    search_uids(self.client, self.watch, since) if searched is None else searched
                )
            else:
                delta = changed_since(
                    self.selection, (known, state), previous, (since, resync, sent)
                )
                current, sync.gone, sync.flags, sent = delta
            scan = FolderScan(folder)
            uids = sorted(current - previous)
            with self.selection.behind(*then) as ahead:
                self.headers.fetch(
                    folder, uids, since, scan, progress, state.uidvalidity, then=ahead, sent=sent
                )
            sync.new, sync.failures = scan.messages, scan.failures
        return sync

    @contextlib.contextmanager
    def _guard(self, folder: str) -> Iterator[None]:
        try:
            yield
        except (OSError, IMAPClientAbortError, EOFError) as exc:
            raise network_error(self.host, exc, self.timeout) from exc
        except IMAPClientError as exc:
            text = server_text(exc)
            raise throttled(self.host, text) or ServerError(
                f"{self.host}: reading folder {folder!r} failed: {text}"
            ) from exc

    def examine(self, folder: str) -> FolderState:
        """The folder's state on EXAMINE (read-only SELECT). The folder stays selected, and
        a `sync_folder` of it that comes next uses this state instead of asking again
        (Dovecot re-reads a large maildir's directory on every EXAMINE: ~0.1 s)."""
        return self.examine_each([folder])[0]

    def unchanged(self, folder: str, known: FolderState | None) -> FolderSync | None:
        """What `sync_folder` finds of a folder the quick check just found unchanged since
        `known` (nothing, and without asking); None otherwise. Told once."""
        same = self.selection.unchanged(folder, known)
        return None if same is None else FolderSync(folder, same, replace=False)

    def examine_each(
        self, folders: Sequence[str], known: Sequence[FolderState | None] | None = None
    ) -> list[FolderState]:
        """`examine` of each folder, all asked in one write (a service's quick check: one
        round trip, not one a folder). The last stays selected, for a `sync_folder` of it;
        with `known` (each folder's state at the last poll), QRESYNC's answer of it too.
        A LIST goes with them unless one was just answered: a read that follows lists no
        more (a running service's kept session; cron's has its LOGIN's)."""
        with self._guard(folders[0] if folders else ""):
            answers, listed = self.selection.examine_each(
                list(folders), None if known is None else [*known], self._fresh() is None
            )
        if listed is not None:
            self._listing = (time.monotonic(), listed)
        for folder, answer in zip(folders, answers, strict=True):
            if isinstance(answer, Exception):
                with self._guard(folder):  # that folder's error, in its words
                    raise answer
        return [a for a in answers if not isinstance(a, Exception)]


def _renumbered(account: str, folder: str, known: FolderState, state: FolderState) -> None:
    # RFC 3501 2.3.1.1: the server renumbered the folder (restored, recreated, migrated).
    # Handled by a rebuild, but worth a line: it costs a full read.
    log.warning(
        "%s: folder %r changed its UIDVALIDITY (%d -> %d); reading it again",
        *(account, folder, known.uidvalidity, state.uidvalidity),
    )
