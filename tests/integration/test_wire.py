"""The streamed FETCH reader on scripted byte streams, cut into chunks of every size.

Real servers are exercised by test_scan_imap (Dovecot), test_faults and test_hostile;
here the reader's own edges: records split anywhere, unsolicited lines, shapes it
must refuse, the tagged answer, limits and a closed connection.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inboxwatch.imap.fetchitems import FetchRecord
from inboxwatch.imap.stream import StreamError, read_fetch

HEADER = b"Message-ID: <a@x>\r\nFrom: A <a@x.example>\r\n\r\n"
ITEMS = b"BODY[HEADER.FIELDS (MESSAGE-ID FROM)]"


class Chunked:
    """imaplib's buffered socket file, handing out at most `size` bytes per read."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size, self.pos = data, size, 0

    def read1(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + min(n, self.size)]
        self.pos += len(chunk)
        return chunk


class FakeImap:
    def __init__(self, response: bytes, size: int) -> None:
        self.file = Chunked(response, size)

    def rest(self) -> bytes:
        """What the next reader of the connection gets (read_fetch may put bytes back)."""
        out = b""
        while chunk := self.file.read1(1 << 20):
            out += chunk
        return out


def record(n: int, header: bytes = HEADER, before: bytes = b"", after: bytes = b"") -> bytes:
    return (
        f"* {n} FETCH (UID {n + 100} FLAGS (\\Seen) INTERNALDATE "
        f'"20-Nov-2026 09:00:00 +0100" '.encode()
        + before
        + ITEMS
        + f" {{{len(header)}}}\r\n".encode()
        + header
        + after
        + b")\r\n"
    )


def read(response: bytes, size: int) -> tuple[list[FetchRecord], tuple[str, bytes] | None]:
    got: list[FetchRecord] = []
    answered = read_fetch(FakeImap(response, size), [b"T1"], got.append, 1 << 20)  # type: ignore[arg-type]
    return got, None if answered is None else answered[b"T1"]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1 << 20])
def test_records_split_anywhere_are_read_whole(size):
    response = (
        record(1)
        + b"* 3 EXISTS\r\n"  # unsolicited status lines are passed over
        + record(2, header=b"Subject: {5}\r\n\r\n")  # a brace inside the literal is data
        + record(3, after=b" MODSEQ (12)")  # items after the literal are read too
        + b'* 4 FETCH (FLAGS () INTERNALDATE "20-Nov-2026 09:00:00 +0100" UID 104 '  # any order
        + ITEMS
        + b" {%d}\r\n%s)\r\n" % (len(HEADER), HEADER)
        # Gmail's order, with its ids (X-GM-EXT-1) first
        + b"* 5 FETCH (X-GM-THRID 1266894439832287888 X-GM-MSGID 1278455344230334865 UID 105 "
        + b'FLAGS (\\Seen) INTERNALDATE "20-Nov-2026 09:00:00 +0100" '
        + ITEMS
        + b" {%d}\r\n%s)\r\n" % (len(HEADER), HEADER)
        + b"T1 OK Fetch completed.\r\n"
    )
    got, status = read(response, size)
    assert status == ("OK", b"Fetch completed.")
    assert [r[0] for r in got] == [101, 102, 103, 104, 105]
    assert got[3][1:] == (HEADER, frozenset(), got[0][3], ("", ""))
    assert got[4][4] == ("1278455344230334865", "1266894439832287888")
    assert got[0][1] == HEADER and got[1][1] == b"Subject: {5}\r\n\r\n"
    assert got[0][2] == frozenset({"\\Seen"})
    assert got[0][3] == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "odd",
    [
        b"* 9 FETCH (UID 109 FLAGS (\\Seen))\r\n",  # an unsolicited FETCH without a literal
        b"* 9 FETCH (UID 109 BODY[] {3}\r\nabc)\r\n",  # not our header item
        record(9, after=b" X-EXTRA {2}\r\nxy"),  # a second literal
        b"* OK [ALERT] {weird}\r\n",
        # a line break inside FLAGS: not one record line, however the rest looks
        b'* 9 FETCH (UID 109 FLAGS (\\Seen\r\n) INTERNALDATE "20-Nov-2026 09:00:00 +0100" '
        + ITEMS
        + b" {3}\r\nabc)\r\n",
    ],
)
@pytest.mark.parametrize("size", [3, 1 << 20])
def test_an_unexpected_shape_is_read_to_the_end_and_refused(odd, size):
    response = record(1) + odd + record(2) + b"T1 OK done\r\n"
    imap = FakeImap(response + b"NEXT", size)
    got: list[FetchRecord] = []
    assert read_fetch(imap, [b"T1"], got.append, 1 << 20) is None  # type: ignore[arg-type]
    assert [r[0] for r in got] == [101]
    # Read to its tagged line: the bytes after it are left for the next command (an
    # EXAMINE sent behind the FETCH: imap.selection), put back if read with it.
    assert imap.rest() == b"NEXT"


@pytest.mark.parametrize("size", [3, 1 << 20])
def test_pipelined_fetches_may_be_answered_mixed_and_out_of_order(size):
    """RFC 3501 5.5: commands sent together may run at once; Dovecot mixes two FETCHes'
    records and may finish the second first. Every record is taken, whoever asked."""
    response = record(1) + record(7) + b"T2 OK second\r\n" + record(2) + b"T1 OK first\r\n"
    imap = FakeImap(response + b"* 9 EXISTS\r\n", size)
    got: list[FetchRecord] = []
    answered = read_fetch(imap, [b"T1", b"T2"], got.append, 1 << 20)  # type: ignore[arg-type]
    assert answered == {b"T1": ("OK", b"first"), b"T2": ("OK", b"second")}
    assert [r[0] for r in got] == [101, 107, 102]
    # A surprise in one: both are read to their ends, nothing is left half read.
    odd = record(1) + b"* 9 FETCH (UID 109 FLAGS (\\Seen))\r\n" + b"T1 OK a\r\n"
    imap = FakeImap(odd + record(3) + b"T2 OK b\r\nNEXT", size)
    assert read_fetch(imap, [b"T1", b"T2"], got.append, 1 << 20) is None  # type: ignore[arg-type]
    assert imap.rest() == b"NEXT"


def test_the_tagged_no_is_returned():
    got, status = read(b"T1 NO [SERVERBUG] Internal error\r\n", 5)
    assert got == [] and status == ("NO", b"[SERVERBUG] Internal error")


def test_a_literal_over_the_limit_is_refused_before_reading_it():
    imap = FakeImap(b"* 1 FETCH (UID 1 FLAGS () " + ITEMS + b" {2000000000}\r\nxx", 1 << 20)
    with pytest.raises(StreamError, match="refusing to read it"):
        read_fetch(imap, [b"T1"], lambda r: None, 32 << 20)  # type: ignore[arg-type]


@pytest.mark.parametrize("cut", [5, 60, len(record(1)) - 3])
def test_a_closed_connection_mid_response_is_an_error(cut):
    with pytest.raises(StreamError, match="closed the connection"):
        read(record(1)[:cut], 4)


def test_bye_ends_the_read():
    with pytest.raises(StreamError, match="ended the session"):
        read(b"* BYE shutting down\r\n", 1 << 20)


def test_bytes_after_the_tagged_line_are_left_for_imaplib():
    import io

    imap = FakeImap(b"", 1)
    imap.file = io.BufferedReader(io.BytesIO(record(1) + b"T1 OK done\r\n* 4 EXISTS\r\n* 5 RE"))  # type: ignore[assignment]
    got: list[FetchRecord] = []
    assert read_fetch(imap, [b"T1"], got.append, 1 << 20) == {b"T1": ("OK", b"done")}  # type: ignore[arg-type]
    assert [r[0] for r in got] == [101]
    assert imap.file.readline() == b"* 4 EXISTS\r\n"
    assert imap.file.read(4) == b"* 5 "
    assert imap.file.readline() == b"RE"
