"""The bulk header FETCH read straight off the connection, record by record.

imaplib reads a response line by line, logs every line through imapclient's
logger adapter and keeps it all in a list until the tagged answer; for 100,000
messages that costs several times what the server spends. Here the response is
read in large chunks from imaplib's own buffered socket file and each
`* n FETCH (… {size}\\r\\n<literal> …)` record is cut out with one regex, so
memory stays at one chunk plus the caller's parsed records.

This is the one module that touches imaplib's internals (`IMAPClient._imap`, its
`file`, `_new_tag`, `send` and `read`): imapclient offers no streamed FETCH nor a
bound on literal sizes. tests/integration/test_wire_internals.py fails if imapclient or
imaplib stop providing what is relied on here.

Strict by design: anything other than that shape, an untagged status line or
the tagged answer (an unsolicited FETCH, a second literal, a quoted body)
makes `read_fetch` drain the response to its tagged line and return None, and
the caller takes the generic imapclient route for that batch instead.
"""

from __future__ import annotations

import imaplib
import io
import logging
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from imapclient import IMAPClient, imap4, tls
from imapclient.exceptions import IMAPClientAbortError

from inboxwatch.errors import ServerError
from inboxwatch.imap.fetchitems import USUAL_ITEMS, FetchRecord, fetch_items, usual_items
from inboxwatch.net import shut_down, within

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# A header block is small; a server announcing a far bigger literal is broken or hostile,
# and imaplib would allocate the announced size up front.
MAX_LITERAL = 32 * 1024 * 1024
# No line of a response is longer (imaplib's own _MAXLINE): a server sending a line
# without end, or bytes without end after a literal, is cut here, not held in memory.
MAX_LINE = 1_000_000
_RECORD = re.compile(rb"\* \d+ FETCH \(([^\r\n{}]*)\{(\d+)\}\r\n")
# The same with Dovecot's order of our items (fetchitems.USUAL_ITEMS) taken in the same match:
# group 1 is the whole head, 2-9 the items, the last the literal's size, as in _RECORD.
_USUAL_RECORD = re.compile(rb"\* \d+ FETCH \((" + USUAL_ITEMS + rb")\{(\d+)\}\r\n")
_TAIL = re.compile(rb"([^\r\n{}]*)\)\r\n")
_UNTAGGED = re.compile(rb"\* (?!\d+ FETCH)[^\r\n{}]*\r\n")  # `* 3 EXISTS`, `* OK …`
_LITERAL_END = re.compile(rb"\{(\d+)\}\r\n$")


class SocketWatch:
    """A session's socket, reachable from the moment it exists, and the deadline of each
    operation on it. imapclient reads the greeting (and does the TLS handshake) inside
    its constructor, before the caller holds the client; `timeout` bounds each read only,
    so a server sending a byte per read would hold an operation forever (net.Deadline)."""

    def __init__(self, host: str, seconds: float) -> None:
        self.host = host
        self.seconds = seconds
        self.raw: socket.socket | None = None
        self.imap: imaplib.IMAP4 | None = None

    def current(self) -> socket.socket | None:
        # imaplib's `sock`, once set, is the live one: STARTTLS replaces it.
        sock: socket.socket | None = getattr(self.imap, "sock", None)
        return sock if sock is not None else self.raw

    def shutdown(self) -> None:
        """End the session from another thread: whatever it waits for fails at once."""
        shut_down(self.current())

    def deadline(self, what: str, times: int = 1) -> AbstractContextManager[None]:
        """`what` (connect, greeting and login; one command; one FETCH batch, or `times`
        batches sent together) within `times` × `seconds` (net.OPERATION_DEADLINE times
        the account's timeout), else the connection is shut and a ServerError says why."""
        seconds = self.seconds * times
        slow = ServerError(
            f"{self.host} answered too slowly: {what} took over {seconds:g}s; try again "
            "later (or raise the account's timeout if this server is always that slow)"
        )
        return within(seconds, self.shutdown, slow)


class WatchedClient(IMAPClient):  # type: ignore[misc]  # imapclient is untyped
    """IMAPClient whose imaplib connection reports its socket to a SocketWatch."""

    def __init__(self, watch: SocketWatch, *args: Any, **kwargs: Any) -> None:
        self.watch = watch
        super().__init__(*args, **kwargs)

    # Set once logged in to a server offering CONDSTORE (RFC 7162): each EXAMINE carries the
    # CONDSTORE parameter, a "CONDSTORE enabling command" (3.1) that also answers with
    # HIGHESTMODSEQ, so the session needs no ENABLE and its round trip.
    condstore = False

    def select_folder(self, folder: str, readonly: bool = False) -> dict[bytes, Any]:
        if self.condstore:
            name = self._normalise_folder(folder)
            try:
                self._command_and_check("select", f"{_text(name)} (CONDSTORE)", readonly)
                return dict(self._process_select_response(self._imap.untagged_responses))
            except imaplib.IMAP4.error as exc:
                if "command error: BAD" not in str(exc):  # imaplib's words for a BAD
                    raise  # NO: the folder's own answer (missing, no access)
                # A server that offers CONDSTORE but not its EXAMINE parameter breaks RFC
                # 7162; without HIGHESTMODSEQ a poll asks for flags instead: only slower.
                log.info("%s: EXAMINE (CONDSTORE) refused (%s); without it", self.host, exc)
                self.condstore = False
        return dict(super().select_folder(folder, readonly))

    def _create_IMAP4(self) -> imaplib.IMAP4:
        timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _WatchedTLS(self.watch, self.host, self.port, self.ssl_context, timeout)
        return _WatchedPlain(self.watch, self.host, self.port, timeout)


def _text(value: str | bytes) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


class _Greeted:
    """imaplib asks CAPABILITY right after the greeting; a greeting carrying a
    `[CAPABILITY …]` response code (RFC 3501 7.1; Dovecot's greeting does) has
    already said it: one round trip less on every connection (0.1 s at 100 ms RTT). Only
    the greeting: after STARTTLS the command is sent, as RFC 2595 3.1 wants."""

    untagged_responses: dict[str, list[Any]]
    capabilities: tuple[str, ...]
    _encoding: str
    _greeted = False

    def _get_capabilities(self) -> None:
        said = None if self._greeted else self.untagged_responses.pop("CAPABILITY", None)
        self._greeted = True
        if said and isinstance(said[-1], bytes) and b"IMAP4REV1" in said[-1].upper():
            self.capabilities = tuple(str(said[-1], self._encoding).upper().split())
            return
        super()._get_capabilities()  # type: ignore[misc]


class _WatchedPlain(_Greeted, imap4.IMAP4WithTimeout):  # type: ignore[misc]
    def __init__(self, watch: SocketWatch, host: str, port: int, timeout: float | None) -> None:
        self.watch = watch
        watch.imap = self
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        self.watch.raw = super()._create_socket(timeout)
        return self.watch.raw


class _WatchedTLS(_Greeted, tls.IMAP4_TLS):  # type: ignore[misc]
    def __init__(
        self,
        watch: SocketWatch,
        host: str,
        port: int,
        context: ssl.SSLContext | None,
        timeout: float | None,
    ) -> None:
        self.watch = watch
        watch.imap = self
        super().__init__(host, port, context, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        # As imapclient's tls.wrap_socket, but the TLS socket is watched before the
        # handshake, which a server can trickle as slowly as a greeting.
        raw = socket.create_connection((self.host, self.port), timeout or self._timeout)
        context = self.ssl_context or ssl.create_default_context()
        sock = context.wrap_socket(raw, server_hostname=self.host, do_handshake_on_connect=False)
        self.watch.raw = sock
        sock.do_handshake()
        return sock


def connection(client: IMAPClient) -> imaplib.IMAP4:
    """imapclient's imaplib connection, for the streamed FETCH and the generic UID FETCH."""
    imap: imaplib.IMAP4 = client._imap
    return imap


def xoauth2(client: IMAPClient, user: str, token: str) -> None:
    """SASL XOAUTH2 (Google's and Microsoft's mechanism; Dovecot's oauth2 passdb). A refused
    token gets a `+` continuation carrying a base64 JSON error, and the server waits for
    an empty line before its NO (Google's XOAUTH2 protocol page); imapclient's
    oauth2_login would send the token a second time there. Raises imaplib's error on NO."""
    first = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    answered: list[bool] = []

    def respond(_challenge: bytes) -> bytes:
        if answered:
            return b""  # the error continuation: an empty line ends the exchange
        answered.append(True)
        return first

    connection(client).authenticate("XOAUTH2", respond)


def bound_literals(client: IMAPClient) -> None:
    """Refuse a literal over MAX_LITERAL before imaplib allocates it (bounded memory)."""
    imap = connection(client)
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

    imap.read = guarded  # type: ignore[method-assign]


class StreamError(Exception):
    """The connection ended or broke a limit mid-response: it cannot be used again."""


class _Reader:
    def __init__(self, imap: imaplib.IMAP4, max_literal: int) -> None:
        # imaplib's `sock.makefile("rb")`: a BufferedReader, so nothing it buffered is lost.
        self.file: io.BufferedReader = imap.file  # type: ignore[assignment]
        if isinstance(self.file, _Pushback) and not self.file.peek(1):
            self.file = imap.file = self.file.after  # what was put back is used up
        self.max_literal = max_literal
        self.buf = b""
        self.pos = 0

    def more(self, limit: int = MAX_LINE) -> None:
        """Read on; `limit` bounds what may be held unconsumed (a line, or a literal and
        the line around it)."""
        if len(self.buf) - self.pos > limit:
            raise StreamError(
                f"the server sent a response line of over {limit:,} bytes; refusing to read on"
            )
        chunk = self.file.read1(CHUNK)
        if not chunk:
            raise StreamError("the server closed the connection mid-response")
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0

    def line(self) -> bytes:
        """The next line, CRLF included, without looking at literals."""
        while (end := self.buf.find(b"\r\n", self.pos)) < 0:
            self.more()
        line = self.buf[self.pos : end + 2]
        self.pos = end + 2
        return line

    def take(self, size: int) -> None:
        while len(self.buf) - self.pos < size:
            self.more(size)
        self.pos += size

    def check_literal(self, size: int) -> None:
        if size > self.max_literal:
            # imaplib would allocate the announced size; the stream cannot be resynchronised.
            raise StreamError(
                f"server announced a {size:,}-byte literal (limit {self.max_literal:,}); "
                "refusing to read it"
            )


def send(imap: imaplib.IMAP4, command: bytes) -> bytes:
    """Send `command` without reading its answer (read_fetch reads it); returns its tag.
    Commands sent before earlier ones are answered are answered in order (RFC 3501 5.5)."""
    tag: bytes = imap._new_tag()
    imap.send(tag + b" " + command + b"\r\n")
    return tag


def read_fetch(
    imap: imaplib.IMAP4,
    tags: Sequence[bytes],
    on_record: Callable[[FetchRecord], None],
    max_literal: int,
) -> dict[bytes, tuple[str, bytes]] | None:
    """Hand each record of the `UID FETCH …` commands sent as `tags` to `on_record` as it
    arrives, until every one is answered. Pipelined commands may be run at once and
    their records mixed (RFC 3501 5.5; Dovecot does): a record is not tied to a tag.

    Returns each tag's status (`OK`/`NO`/`BAD`, text), or None when a response held
    something the strict reader does not take (all were read to their ends).
    """
    reader = _Reader(imap, max_literal)
    pending = tuple(tag + b" " for tag in tags)  # a tuple: bytes.startswith takes it whole
    answered: dict[bytes, tuple[str, bytes]] = {}
    while pending:
        record = _record(reader, pending)
        if isinstance(record, tuple):
            on_record(record)
            continue
        if record is None:
            _drain(reader, set(pending))
            return None
        tag, _, rest = record.partition(b" ")
        pending = tuple(t for t in pending if t != tag + b" ")
        status, _, text = rest.partition(b" ")
        answered[tag] = status.decode("ascii", "replace"), text.rstrip(b"\r\n")
    if reader.pos < len(reader.buf):  # the server already said more: keep it for imaplib
        imap.file = _Pushback(reader.buf[reader.pos :], reader.file)
    return answered


def _record(reader: _Reader, done: tuple[bytes, ...]) -> FetchRecord | bytes | None:
    """One FETCH record, a tagged line of `done` (bytes), or None for anything unexpected."""
    while True:
        while (end := reader.buf.find(b"\r\n", reader.pos)) < 0:
            reader.more()
        buf, pos = reader.buf, reader.pos
        if buf.startswith(done, pos):
            reader.pos = end + 2
            return buf[pos : end + 2]
        usual = _USUAL_RECORD.match(buf, pos)
        head = usual or _RECORD.match(buf, pos)
        if head is None:
            if (skip := _UNTAGGED.match(buf, pos)) is None:
                return None
            if buf.startswith(b"* BYE", pos):  # RFC 3501 7.1.5: the server is closing
                text = buf[pos + 2 : end].decode("utf-8", "replace")
                raise StreamError(f"the server ended the session: {text}")
            reader.pos = skip.end()  # unsolicited EXISTS/RECENT/OK: nothing to read here
            continue
        size = int(head.group(head.re.groups))
        reader.check_literal(size)
        start = head.end()
        while (tail := _TAIL.match(reader.buf, start + size)) is None:
            if reader.buf.find(b"\r\n", start + size) >= 0:
                reader.pos = start  # the literal is consumed by the drain from here
                reader.take(size)
                return None
            reader.more(start - pos + size + MAX_LINE)
            start -= pos
            pos = 0
        buf = reader.buf
        reader.pos = tail.end()
        rest = tail.group(1)
        items = usual_items(usual, 2) if usual and not rest else fetch_items(head.group(1), rest)
        if items is None:
            return None
        uid, flags, date, ids = items
        return uid, buf[start : start + size], flags, date, ids


class _Pushback(io.BufferedReader):
    """imaplib's file with bytes read past a tagged line put back in front (an unsolicited
    `* n EXISTS` sent right after it must reach imaplib whole)."""

    def __init__(self, data: bytes, file: io.BufferedReader) -> None:
        super().__init__(io.BytesIO(data))
        self.after = file

    def read1(self, size: int = -1) -> bytes:
        data = super().read1(size)
        return data or self.after.read1(size)

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        limit = -1 if size is None or size < 0 else size - len(line)
        if not line.endswith(b"\n") and limit != 0:
            line += self.after.readline(limit)
        return line

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if size is not None and size >= 0 and len(data) < size:
            data += self.after.read(size - len(data))
        return data


def _drain(reader: _Reader, pending: set[bytes]) -> None:
    """Read to every pending tagged line, skipping literals, so the connection stays
    usable."""
    while pending:
        line = reader.line()
        tag = next((t for t in pending if line.startswith(t)), None)
        if tag is not None:
            pending.discard(tag)
            continue
        literal = _LITERAL_END.search(line)
        if literal is not None:
            size = int(literal.group(1))
            reader.check_literal(size)
            reader.take(size)


def uid_set(uids: Sequence[int]) -> str:
    """`1:5,7,9:12`: sorted UIDs as ranges, for short command lines (RFC 3501 sequence-set)."""
    parts: list[str] = []
    ordered = sorted(uids)
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid != prev + 1:
            parts.append(f"{start}:{prev}" if prev > start else str(start))
            start = uid
        prev = uid
    parts.append(f"{start}:{prev}" if prev > start else str(start))
    return ",".join(parts)


def batches(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
