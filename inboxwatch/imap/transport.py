"""The IMAP session's socket: imaplib's plain or TLS connection, its socket reported to a
SocketWatch (deadlines, a shutdown from another thread), the capabilities a greeting
already told taken from it, literals bounded, QRESYNC's `[CLOSED]` boundary kept, and
writes deflated under COMPRESS (imap.compress). imap.wire builds its client on these."""

from __future__ import annotations

import socket
import ssl
import zlib
from typing import Any

from imapclient import imap4, tls
from imapclient.exceptions import IMAPClientAbortError

from inboxwatch.imap.watch import SocketWatch

# A header block is small; a server announcing a far bigger literal is broken or hostile,
# and imaplib would allocate the announced size up front.
MAX_LITERAL = 32 * 1024 * 1024


class _Greeted:
    """imaplib asks CAPABILITY right after the greeting; a greeting carrying a
    `[CAPABILITY …]` response code (RFC 3501 7.1; Dovecot's greeting does) has
    already said it: one round trip less on every connection (0.1 s at 100 ms RTT). Only
    the greeting: after STARTTLS the command is sent, as RFC 2595 3.1 wants."""

    untagged_responses: dict[str, list[Any]]
    capabilities: tuple[str, ...]
    _encoding: str
    _greeted = False
    deflater: Any = None  # set once COMPRESS DEFLATE is on (imap.compress)

    def _get_capabilities(self) -> None:
        said = None if self._greeted else self.untagged_responses.pop("CAPABILITY", None)
        self._greeted = True
        if said and isinstance(said[-1], bytes) and b"IMAP4REV1" in said[-1].upper():
            self.capabilities = tuple(str(said[-1], self._encoding).upper().split())
            return
        super()._get_capabilities()  # type: ignore[misc]

    def read(self, size: int) -> bytes:
        # imaplib reads every literal through here: a literal over MAX_LITERAL is refused
        # before its size is allocated. The stream cannot be resynchronised after: it ends.
        if size > MAX_LITERAL:
            raise IMAPClientAbortError(
                f"server announced a {size:,}-byte literal (limit {MAX_LITERAL:,}); "
                "refusing to read it"
            )
        data: bytes = super().read(size)  # type: ignore[misc]
        return data

    def send(self, data: bytes) -> None:
        # Every write of imaplib's and ours comes here; under COMPRESS each is deflated
        # and flushed whole, so the server can act on it (RFC 4978 section 4).
        if self.deflater is not None:
            data = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)  # type: ignore[misc]

    def _append_untagged(self, typ: str, dat: Any) -> None:
        # RFC 7162 3.2.11: with QRESYNC on, an EXAMINE's `OK [CLOSED]` ends what is said of
        # the folder selected before it; the VANISHED and FETCH answers heard until then
        # (changes made there meanwhile by another client) are not the new folder's.
        if typ == "CLOSED":
            self.untagged_responses.pop("VANISHED", None)
            self.untagged_responses.pop("FETCH", None)
        super()._append_untagged(typ, dat)  # type: ignore[misc]


class WatchedPlain(_Greeted, imap4.IMAP4WithTimeout):  # type: ignore[misc]
    def __init__(self, watch: SocketWatch, host: str, port: int, timeout: float | None) -> None:
        self.watch = watch
        watch.imap = self
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        self.watch.raw = super()._create_socket(timeout)
        return self.watch.raw


class WatchedTLS(_Greeted, tls.IMAP4_TLS):  # type: ignore[misc]
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
