"""COMPRESS=DEFLATE (RFC 4978): a session's traffic deflated both ways after LOGIN, for a
slow link. The bench's generated headers deflate 7.3× (NeoMutt measured 8.7× on real
traffic), so at 100 ms RTT and 100 Mbit a 100,000-message audit took 6.5 s instead of
12.0 (bench/README.md). The server pays the deflating, we the inflating; on loopback the
same audit took 6.4 s instead of 5.9, so it is asked only where the account says
`compress = true`.

It goes as the last command of the LOGIN's write (imap.wire.login_listing), not waiting
for a capability: a greeting seldom lists it (Dovecot lists it once logged in), and a
server without it answers BAD, which costs nothing. After the server's tagged OK
everything it sends is one raw DEFLATE stream (RFC 1951, no zlib header), flushed at
least at the end of each response, and so is everything the client sends (here each
write, flushed with Z_SYNC_FLUSH, as RFC 4978 section 4 asks). imaplib reads from
`imap.file` and writes through `imap.send`: the first is swapped for an inflating reader
over it (whatever it buffered after the OK is the stream's start), the second deflates
once `imap.deflater` is set (imap.transport).
"""

from __future__ import annotations

import imaplib
import io
import logging
import zlib
from typing import Any

log = logging.getLogger(__name__)

CHUNK = 1 << 16  # compressed bytes read at a time: ~64 KB holds ~0.4 MB of headers
# Inflated at most at a time: DEFLATE expands up to ~1,000×, so a hostile server's 64 KB
# could otherwise become ~64 MB at once (the rest waits in `unconsumed_tail`).
OUT = 1 << 20
COMMAND = b"COMPRESS DEFLATE"


class Inflating(io.RawIOBase):
    """The inflated bytes of a raw DEFLATE stream read from `source` (a buffered file)."""

    def __init__(self, source: Any) -> None:
        super().__init__()
        self.source = source
        self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw: no zlib header
        self.left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # Blocks until at least one inflated byte is there: a compressed chunk may inflate
        # to nothing yet (a block split across reads), and a 0 would read as end of file.
        while not self.left:
            data = self.inflater.unconsumed_tail
            if not data:
                data = self.source.read1(CHUNK)
                if not data:
                    return 0  # the server closed the connection
            try:
                self.left = memoryview(self.inflater.decompress(data, OUT))
            except zlib.error as exc:
                raise OSError(f"the server's compressed stream is damaged ({exc})") from None
        count = min(len(buffer), len(self.left))
        buffer[:count] = self.left[:count]
        self.left = self.left[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            self.source.close()
        super().close()


def start(imap: Any) -> None:
    """Deflate from now on: the server's tagged OK to COMPRESS was just read."""
    imap.file = io.BufferedReader(Inflating(imap.file), CHUNK * 8)
    imap.deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)


def answered(imap: Any, tag: bytes, host: str) -> None:
    """The answer to the COMPRESS sent as `tag` read, and compression begun if it was OK.
    A server that does not offer it answers BAD or NO: the session goes on as it was."""
    try:
        typ, said = imap._command_complete("COMPRESS", tag)
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error as exc:  # imaplib's word for a BAD
        typ, said = "BAD", [str(exc).encode()]
    if typ != "OK":
        text = said[-1].decode("utf-8", "replace") if said and isinstance(said[-1], bytes) else ""
        log.info("%s: COMPRESS DEFLATE not taken (%s %s); reading uncompressed", host, typ, text)
        return
    start(imap)
