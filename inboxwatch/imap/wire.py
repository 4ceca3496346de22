"""The IMAP session's connection: imapclient over imap.transport's watched socket,
EXAMINE with CONDSTORE or QRESYNC and the SEARCH sent with it (and with SEARCHRES the
FETCH of what it finds), a FETCH sent now and read later, and `send` for commands whose
answer `imap.stream` reads. (SASL XOAUTH2 is imap.sasl; bounded literals, imap.transport.)

imaplib's internals are touched here (`IMAPClient._imap`, its `_new_tag`,
`_command_complete`, `state`, `send` and `read`), in imap.transport (which overrides the
greeting's capabilities, `read`, `send` and untagged answers) and in imap.compress (which
swaps imaplib's `file`): imapclient offers no streamed FETCH, no pipelining, no bound on
literal sizes and no COMPRESS. tests/integration/test_wire_internals.py fails if
imapclient or imaplib stop providing what is relied on.
"""

from __future__ import annotations

import imaplib
import logging
from collections.abc import Sequence
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from imapclient.imapclient import join_message_ids, seq_to_parenstr_upper
from imapclient.response_parser import parse_message_list

from inboxwatch.imap import answers, compress
from inboxwatch.imap.answers import Asked, Examined, Prefetch, esearch_uids
from inboxwatch.imap.fetchparse import parse_fetch
from inboxwatch.imap.resync import resync_of
from inboxwatch.imap.transport import WatchedPlain, WatchedTLS
from inboxwatch.imap.watch import SocketWatch

log = logging.getLogger(__name__)
# list_folders' answer: (flags, delimiter, name) a folder
Listing = list[tuple[Any, Any, str]]
# A folder's (UIDVALIDITY, HIGHESTMODSEQ) at the last poll, for QRESYNC; None: not known.
Known = tuple[int, int] | None


class WatchedClient(IMAPClient):  # type: ignore[misc]  # imapclient is untyped
    """IMAPClient whose imaplib connection reports its socket to a SocketWatch."""

    def __init__(self, watch: SocketWatch, *args: Any, **kwargs: Any) -> None:
        self.watch = watch
        super().__init__(*args, **kwargs)

    # Set once logged in to a server offering CONDSTORE (RFC 7162): each EXAMINE carries the
    # CONDSTORE parameter, a "CONDSTORE enabling command" (3.1) that also answers with
    # HIGHESTMODSEQ, so the session needs no ENABLE and its round trip.
    condstore = False
    # Set once logged in to a server offering SEARCHRES (RFC 5182): `examine_send` may send
    # the FETCH of what its SEARCH finds in the same write (`$`, the saved result).
    searchres = False
    # Set by a polling session (imap.source: `resync`) where QRESYNC (RFC 7162 3.2) may be
    # offered: ENABLE QRESYNC goes with the LOGIN or the first EXAMINEs (`login_listing`,
    # `_examines`); `resyncing` once the server said so (imap.resync).
    qresync = resyncing = _enable_asked = False
    compress = False  # ask COMPRESS DEFLATE once logged in (the account's `compress`)

    def examine(self, folder: str, search: bytes = b"") -> tuple[dict[bytes, Any], list[int]]:
        """EXAMINE `folder` (a read-only SELECT); with `search`, a `UID SEARCH search` in it
        goes in the same write and its UIDs come back too: one round trip for both (0.1 s
        at 100 ms RTT). The SEARCH depends on the EXAMINE, and RFC 3501 5.5 has a server
        run such commands in order; Dovecot starts no command while an EXAMINE runs.
        Raises as imapclient's select_folder and search do."""
        examined = self.examine_answer(self.examine_send(folder, search))
        return examined.info, examined.uids

    def examine_each(
        self, folders: Sequence[str], known: Sequence[Known] | None = None, listing: bool = False
    ) -> tuple[list[Examined | imaplib.IMAP4.error], Listing | None]:
        """EXAMINE each of `folders`, all in one write: RFC 3501 5.5 has a server run them
        in order, so the last stays selected, and a service's quick check costs one round
        trip instead of one a folder. Each folder's select response, or the error its
        EXAMINE answered (every answer read, the session in step); a lost connection
        raises. `known`: each folder's (UIDVALIDITY, HIGHESTMODSEQ) from the last poll, or
        None, for QRESYNC (what changed in it comes with its answer). With `listing`, a
        `LIST "" "*"` goes first in the write: its answer comes back too (None if not OK)."""
        listed = None
        while True:
            states = [None] * len(folders) if known is None else known
            resync = [k is not None and self.resyncing for k in states]  # as sent
            asked = [self._examine_command(f, k) for f, k in zip(folders, states, strict=True)]
            tags = self._examines([self._list_command(), *asked] if listing else asked)
            if listing:  # its answer comes first; not asked again if the EXAMINEs are
                listed, listing = self._listing_answer(tags.pop(0), "with EXAMINE"), False
            replies = [self._examined(tag) for tag in tags]
            if not any(isinstance(reply, _Refused) for reply in replies):
                return [answers.examined(*a) for a in zip(replies, resync, strict=True)], listed
            self._no_condstore(replies)

    def examine_send(
        self,
        folder: str,
        search: bytes = b"",
        fetch: str | None = None,
        status: str = "",
        known: Known = None,
        after: int | None = None,
    ) -> Asked:
        """EXAMINE `folder`, with `UID SEARCH search` behind it, sent in one write and not
        read: `examine_answer` reads them, after whatever was sent before them. With
        `fetch` (FETCH items) and a server offering SEARCHRES (RFC 5182), the SEARCH saves
        its result and `UID FETCH $` of those items goes in the write too: the folder's
        records come without a round trip of their own. With `status`, that other folder's
        message count is asked too, before the SEARCH: Dovecot runs pipelined commands
        side by side, and one sent behind the FETCH could be answered among its records.
        `known`: as examine_each's (no SEARCH); with `after` (its UIDNEXT) and `fetch`, a
        `UID FETCH after:*`, the new mail QRESYNC names (the caller tells the Prefetch)."""
        saving = bool(search and fetch and self.searchres)
        resync = known is not None and not search and self.resyncing  # as the command has it
        commands = {"examine": self._examine_command(folder, None if search else known)}
        if status:
            asking = b"STATUS " + _bytes(self._normalise_folder(status)) + b" (MESSAGES)"
            commands["status"] = asking
        if search:
            saved = b"RETURN (SAVE ALL) " if saving else b""
            commands["searching"] = b"UID SEARCH " + saved + search
        if saving:
            commands["fetching"] = f"UID FETCH $ ({fetch})".encode("ascii")
        elif fetch and after is not None and resync:
            commands["fetching"] = f"UID FETCH {after}:* ({fetch})".encode("ascii")
        tags = dict(zip(commands, self._examines(list(commands.values())), strict=True))
        return Asked(
            folder,
            search,
            tags["examine"],
            tags.get("status"),
            tags.get("searching"),
            tags.get("fetching"),
            resync,
        )

    def examine_answer(self, asked: Asked) -> Examined:
        """What `examine_send` asked, read up to the FETCH (left for imap.stream), and
        raises as `examine`. A server refusing the CONDSTORE parameter is asked again
        without it, once every answer is read."""
        imap = self._imap
        examined = self._examined(asked.examine)
        status = _finish(imap, asked.status, "STATUS") if asked.status else None
        said = imap.untagged_responses.pop("STATUS", [])  # only a hint: a refusal is no error
        messages = answers.status_messages(said) if status and status[0] == "OK" else None
        # After a failed EXAMINE, the SEARCH's BAD (no folder selected) is read all the same.
        searched = _finish(imap, asked.searching, "SEARCH") if asked.searching else None
        fetch = asked.fetching
        if fetch is not None and searched is None and isinstance(examined, dict):
            return Examined(examined, [], Prefetch(fetch, []), messages, resync_of(examined))
        if isinstance(examined, imaplib.IMAP4.error) or searched is None:
            if fetch is not None:  # nothing selected: its BAD is read and left behind
                _finish(imap, fetch, "FETCH")
            if isinstance(examined, _Refused):
                self._no_condstore([examined])
                return self.examine_answer(self.examine_send(asked.folder, asked.search))
            if isinstance(examined, imaplib.IMAP4.error):
                raise examined
            resync = resync_of(examined) if asked.resync else None
            return Examined(examined, [], messages=messages, resync=resync)
        found = self._found(asked.searching if fetch is not None else None)
        if fetch is not None and (searched[0] != "OK" or found is None):
            # $ is empty after a failed SEARCH (RFC 5182 2.1); without an ESEARCH answer
            # the records are not known to be all there: read, dropped, asked plainly.
            _finish(imap, fetch, "FETCH")
            imap.untagged_responses.pop("FETCH", None)
        if searched[0] == "OK" and found is None:
            log.info("%s: no ESEARCH answer to a saved SEARCH; not saving", self.host)
            self.searchres = False
            return self.examine_answer(self.examine_send(asked.folder, asked.search))
        if searched[0] != "OK" or found is None:
            raise imaplib.IMAP4.error(f"search failed: {_said(searched[1])}")
        if fetch is None:
            return Examined(examined, found, None, messages)
        early = imap.untagged_responses.pop("FETCH", [])  # records ahead of the answer
        return Examined(examined, found, Prefetch(fetch, found, early), messages)

    def _found(self, saved: bytes | None) -> list[int] | None:
        """The UIDs a SEARCH answered; a saved one's come in ESEARCH (None: not there)."""
        imap = self._imap
        if saved is not None:
            uids = esearch_uids(imap.untagged_responses.pop("ESEARCH", []), saved)
            return None if uids is None else sorted(uids)
        hits = imap.untagged_responses.pop("SEARCH", [])
        return sorted(parse_message_list(hits)) if hits else []

    def _examine_command(self, folder: str, known: Known = None) -> bytes:
        command = b"EXAMINE " + _bytes(self._normalise_folder(folder))
        if known is not None and self.resyncing:  # RFC 7162 3.2.5; it implies CONDSTORE
            return command + b" (QRESYNC (%d %d))" % known
        return command + b" (CONDSTORE)" if self.condstore else command

    def _examines(self, commands: list[bytes]) -> list[bytes]:
        """EXAMINE `commands` (and any sent with them) written at once; the session's first
        such write has ENABLE QRESYNC in front, its answer read here (it comes first, in
        the same round trip). Returns the tags of `commands`."""
        if not self.qresync or self._enable_asked:
            return _pipelined(self._imap, *commands)
        tags = _pipelined(self._imap, b"ENABLE QRESYNC", *commands)
        self._enabled(tags[0])
        return tags[1:]

    def _enabled(self, tag: bytes) -> None:
        """The answer of the ENABLE QRESYNC sent as `tag`: `resyncing` if it said so."""
        self._enable_asked = True
        typ, _ = _finish(self._imap, tag, "ENABLE")
        said = self._imap.untagged_responses.pop("ENABLED", [])
        self.resyncing = typ == "OK" and any(b"QRESYNC" in bytes(s).upper() for s in said)

    def _examined(self, tag: bytes) -> dict[bytes, Any] | imaplib.IMAP4.error:
        """The answer of the EXAMINE sent as `tag`: its select response, or its error."""
        imap = self._imap
        imap.untagged_responses = {}  # as imaplib's select: this EXAMINE's answers only
        imap.is_readonly = True
        try:
            typ, said = imap._command_complete("EXAMINE", tag)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            imap.state = "AUTH"  # a failed EXAMINE leaves no folder selected (RFC 3501 6.3.2)
            if self.condstore and "command error: BAD" in str(exc):  # imaplib's words
                return _Refused(str(exc))
            return exc  # NO: the folder's own answer (missing, no access)
        imap.state = "SELECTED" if typ == "OK" else "AUTH"  # as imaplib's select
        if typ != "OK":
            return imaplib.IMAP4.error(f"select failed: {_said(said)}")
        return dict(self._process_select_response(imap.untagged_responses))

    def _no_condstore(self, answers: Sequence[object]) -> None:
        # A server that offers CONDSTORE but not its EXAMINE parameter breaks RFC 7162;
        # without HIGHESTMODSEQ a poll asks for flags instead: only slower.
        refused = next(a for a in answers if isinstance(a, _Refused))
        if self.resyncing:  # QRESYNC enabled, and then its parameter refused: CONDSTORE
            log.info("%s: EXAMINE (QRESYNC) refused (%s); without it", self.host, refused)
            self.resyncing = False
            return
        log.info("%s: EXAMINE (CONDSTORE) refused (%s); without it", self.host, refused)
        self.condstore = False

    def login(self, username: str, password: str) -> Any:
        """imapclient's login. A user name or password beyond ASCII goes by AUTHENTICATE
        PLAIN (RFC 4616: UTF-8) where the server offers it: imaplib writes commands as
        ASCII, and the UnicodeEncodeError it raised quoted the password."""
        if username.isascii() and password.isascii():
            return super().login(username, password)
        if b"AUTH=PLAIN" not in self.capabilities():
            raise LoginError(
                "the user name or password has characters beyond ASCII, which LOGIN cannot "
                "send (RFC 3501), and the server offers no AUTHENTICATE PLAIN"
            )
        try:
            return self.plain_login(username, password)
        except imaplib.IMAP4.error as exc:  # as imapclient's login: LoginError, the cause
            raise LoginError(str(exc))  # noqa: B904  # its context (an abort: a dropped line)

    def login_listing(self, username: str, password: str) -> Listing | None:
        """LOGIN and `LIST "" "*"` in one write: a session's first LIST costs no round trip
        of its own (0.1 s at 100 ms RTT; the audit, cron's `run --once` and a service's
        first poll all list). The server runs the LIST after the LOGIN (RFC 3501 5.5), as
        it runs the SEARCH after the EXAMINE (`examine`). Returns list_folders' answer, or
        None when the LIST was not answered OK (the caller lists again). The LOGIN goes
        as imaplib writes it (the user as is, the password quoted) and raises as
        imapclient's login does; a name or password imaplib could not send takes login().
        A session that wants QRESYNC sends ENABLE QRESYNC between them where the greeting
        offers ENABLE (RFC 5161: once authenticated, before any EXAMINE): then its first
        EXAMINEs, a quick check's, already carry QRESYNC. COMPRESS goes last (imap.compress)."""
        imap = self._imap
        login = b"LOGIN %s %s" % (username.encode(), imap._quote(password).encode())
        if not (login.isascii() and username) or b"\r" in login or b"\n" in login:
            self.login(username, password)
            return None
        enable = [b"ENABLE QRESYNC"] if self.qresync and "ENABLE" in imap.capabilities else []
        deflate = [compress.COMMAND] if self.compress else []
        tags = _pipelined(imap, login, *enable, self._list_command(), *deflate)
        try:
            typ, said = imap._command_complete("LOGIN", tags[0])
            if typ != "OK":
                raise imap.error(said[-1])
        except imaplib.IMAP4.error as exc:  # as imapclient: LoginError, the cause its context
            if not isinstance(exc, imaplib.IMAP4.abort):  # the connection is still there:
                for tag in tags[1:]:
                    _finish(imap, tag, "LIST")  # its BAD (not logged in) read, in step
            raise LoginError(str(exc))  # noqa: B904
        imap.state = "AUTH"
        if enable:
            self._enabled(tags[1])
        listing = self._listing_answer(tags[len(tags) - 1 - len(deflate)], "after LOGIN")
        if deflate:
            self._deflated(tags[-1])
        return listing

    def deflate(self) -> None:
        """COMPRESS DEFLATE, if wanted and not sent with the LOGIN (XOAUTH2, a worker)."""
        if self.compress:
            self._deflated(_pipelined(self._imap, compress.COMMAND)[0])

    def _deflated(self, tag: bytes) -> None:
        self.compress = False  # asked once, whatever the answer to `tag` says
        compress.answered(self._imap, tag, self.host)

    def _list_command(self) -> bytes:
        return b'LIST "" ' + _bytes(self._normalise_folder("*"))

    def _listing_answer(self, tag: bytes, sent: str) -> Listing | None:
        """list_folders' answer from the LIST sent as `tag`; None if not OK (list again)."""
        typ, listed = _finish(self._imap, tag, "LIST")
        if typ != "OK":
            log.info("%s: LIST %s answered %s; listing again", self.host, sent, typ)
            return None
        listed = self._imap._untagged_response(typ, listed, "LIST")[1]
        return self._proc_folder_list(listed)  # type: ignore[no-any-return]

    def fetch(
        self, messages: Sequence[int], data: Sequence[str], modifiers: Sequence[str] = ()
    ) -> dict[int, dict[bytes, Any]]:
        """imapclient's `fetch` (UIDs; sent and checked as it does), its answer parsed by
        imap.fetchparse: a record without a literal (BODYSTRUCTURE, PREVIEW, FLAGS) 3×
        faster, any other by imapclient's own parser."""
        return self.fetch_answer(self.fetch_send(messages, data, modifiers), messages)

    def fetch_send(
        self, messages: Sequence[int] | str, data: Sequence[str], modifiers: Sequence[str] = ()
    ) -> bytes | None:
        """`fetch`'s command written, its answer left to `fetch_answer`: the answer travels
        while the caller works. Nothing else may be sent before it is read. `messages`: UIDs,
        or a UID set as text (`4:900`)."""
        if not messages:
            return None
        items = seq_to_parenstr_upper(data)
        tail = [seq_to_parenstr_upper(modifiers)] if modifiers else []
        tag: bytes = self._imap._command("UID", "FETCH", join_message_ids(messages), items, *tail)
        return tag

    def fetch_answer(
        self, tag: bytes | None, messages: Sequence[int]
    ) -> dict[int, dict[bytes, Any]]:
        if tag is None:
            return {}
        typ, said = self._imap._command_complete("FETCH", tag)
        self._checkok("fetch", typ, said)
        typ, said = self._imap._untagged_response(typ, said, "FETCH")
        if said == [None]:
            return {}
        parsed = parse_fetch(said, self.normalise_times)
        # an unsolicited FETCH for another message is dropped, as imapclient does
        return {uid: parsed[uid] for uid in messages if uid in parsed}

    def _create_IMAP4(self) -> imaplib.IMAP4:
        timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return WatchedTLS(self.watch, self.host, self.port, self.ssl_context, timeout)
        return WatchedPlain(self.watch, self.host, self.port, timeout)


class _Refused(imaplib.IMAP4.error):
    """The EXAMINE's CONDSTORE parameter answered with BAD."""


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("ascii")


def _said(data: Sequence[Any]) -> str:
    first = data[0] if data else b""
    return first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)


def _pipelined(imap: imaplib.IMAP4, *commands: bytes) -> list[bytes]:
    """`send`, the tags registered so that imaplib's own loop reads their answers
    (`_command_complete`), as it does for the commands it sends itself."""
    tags = send(imap, *commands)
    for tag in tags:
        imap.tagged_commands[tag] = None
    return tags


def _finish(imap: imaplib.IMAP4, tag: bytes, name: str) -> tuple[str, list[Any]]:
    """The answer of the command `name` sent as `tag` behind another (`_pipelined`)."""
    try:
        answer: tuple[str, list[Any]] = imap._command_complete(name, tag)
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error as exc:  # a BAD, in imaplib's words
        return "BAD", [str(exc).encode()]
    return answer


def connection(client: IMAPClient) -> imaplib.IMAP4:
    """imapclient's imaplib connection, for the streamed FETCH and the generic UID FETCH."""
    imap: imaplib.IMAP4 = client._imap
    return imap


def send(imap: imaplib.IMAP4, *commands: bytes) -> list[bytes]:
    """Send `commands` without reading their answers (imap.stream reads them); returns
    their tags. Commands sent before earlier ones are answered are answered in order
    (RFC 3501 5.5). One write for all: after a first small segment, Nagle's algorithm
    (RFC 896) holds a second write back until the first is acknowledged, which on a real
    link undoes the pipelining (TCP_NODELAY is set too, for imaplib's own writes)."""
    tags: list[bytes] = [imap._new_tag() for _ in commands]
    imap.send(
        b"".join(tag + b" " + line + b"\r\n" for tag, line in zip(tags, commands, strict=True))
    )
    return tags
