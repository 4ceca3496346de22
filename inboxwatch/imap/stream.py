"""The bulk header FETCH read straight off the connection, record by record.

imaplib reads a response line by line, logs every line through imapclient's
logger adapter and keeps it all in a list until the tagged answer; for 100,000
messages that costs several times what the server spends. Here the response is
read in large chunks from imaplib's own buffered socket file (`imap.file`) and each
`* n FETCH (… {size}\\r\\n<literal> …)` record is cut out with one regex, so
memory stays at one chunk plus the caller's parsed records. The commands are sent by
`imap.wire.send`; tests/integration/test_wire_internals.py fails if imaplib stops
providing the buffered file relied on here.

Strict by design: anything other than that shape, an untagged status line or
the tagged answer (an unsolicited FETCH, a second literal, a quoted body)
makes `read_fetch` drain the response to its tagged line and return None, and
the caller takes the generic imapclient route for that batch instead.
"""

from __future__ import annotations

import imaplib
import io
import re
from collections.abc import Callable, Sequence

from inboxwatch.imap.fetchitems import USUAL_ITEMS, FetchRecord, fetch_items, usual_items

CHUNK = 1 << 20
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
            _keep_rest(imap, reader)
            return None
        tag, _, rest = record.partition(b" ")
        pending = tuple(t for t in pending if t != tag + b" ")
        status, _, text = rest.partition(b" ")
        answered[tag] = status.decode("ascii", "replace"), text.rstrip(b"\r\n")
    _keep_rest(imap, reader)
    return answered


def _keep_rest(imap: imaplib.IMAP4, reader: _Reader) -> None:
    """What the server already said after the last answer read (a command sent behind the
    FETCH: imap.selection), kept for imaplib."""
    if reader.pos < len(reader.buf):
        imap.file = _Pushback(reader.buf[reader.pos :], reader.file)


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
