"""A session's socket, watched from the moment it exists, and each operation's deadline."""

from __future__ import annotations

import imaplib
import socket
from contextlib import AbstractContextManager

from inboxwatch.errors import ServerError
from inboxwatch.net import shut_down, within


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
