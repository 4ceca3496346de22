"""A tiny scripted IMAP server for answers a real Dovecot cannot be made to give.

Microsoft 365's throttling, Gmail's connection limit, a huge announced
literal, a malformed FETCH response, BYE in mid-session. Everything else a
scan needs gets a plain, valid answer; `script` overrides a command's answer.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from email.utils import format_datetime

from tests.conftest import NOW, OWNER, mail
from tests.proxy import LoopbackServer

# (tag, folder: an EXAMINE's as sent, parameters too) -> bytes, or chunks sent one by one
# (an endless stream); None: hang up
Answer = bytes | Callable[[str, str], bytes | Iterable[bytes] | None]


def fetch_item(uid: int, header: bytes, flags: str = "\\Seen") -> bytes:
    date = format_datetime(NOW).replace(",", "")
    stamp = date[4:]  # RFC 3501 date-time: "24 Nov 2026 12:00:00 +0000" -> "dd-Mon-yyyy ..."
    day, mon, year, clock, zone = stamp.split()
    return (
        (
            f'* {uid} FETCH (UID {uid} FLAGS ({flags}) INTERNALDATE "{int(day):02d}-{mon}-{year} '
            f'{clock} {zone}" BODY[HEADER.FIELDS (FROM)] {{{len(header)}}}\r\n'
        ).encode()
        + header
        + b")\r\n"
    )


def inbound(uid: int) -> bytes:
    header = mail("Anna <anna@client.example>", subject=f"Q{uid}").split(b"\r\n\r\n")[0]
    return fetch_item(uid, header + b"\r\n\r\n")


def sent(uid: int) -> bytes:
    header = mail(OWNER, "x@y.example", "Sent note").split(b"\r\n\r\n")[0]
    return fetch_item(uid, header + b"\r\n\r\n")


class ScriptedImap(LoopbackServer):
    def __init__(
        self, script: dict[str, Answer] | None = None, greeting: Iterable[bytes] | None = None
    ) -> None:
        self.script = script or {}
        self.greeting = greeting or [b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN ENABLE] ready\r\n"]
        self.lines: list[str] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        reader = conn.makefile("rb")
        folder = ""
        try:
            for chunk in self.greeting:
                conn.sendall(chunk)
            while line := reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                self.lines.append(text)
                tag, _, rest = text.partition(" ")
                words = rest.split(" ")
                name = (
                    " ".join(words[:2]).upper() if words[0].upper() == "UID" else words[0].upper()
                )
                argument = folder
                if name in ("EXAMINE", "SELECT"):  # the callback sees its parameters too
                    argument = rest.split(" ", 1)[1]
                    folder = _name(argument)
                answer = self._answer(name, tag, argument)
                if answer is None:
                    return  # hang up
                for chunk in [answer] if isinstance(answer, bytes) else answer:
                    conn.sendall(chunk)
                if name == "LOGOUT":
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def _answer(self, name: str, tag: str, folder: str) -> bytes | Iterable[bytes] | None:
        scripted = self.script.get(name)
        if scripted is not None:
            return (
                scripted(tag, folder)
                if callable(scripted)
                else scripted.replace(b"{tag}", tag.encode())
            )
        return (
            DEFAULTS.get(name, b"{tag} OK done\r\n").replace(b"{tag}", tag.encode())
            if name != "UID FETCH"
            else self._fetch(tag, folder)
        )

    @staticmethod
    def _fetch(tag: str, folder: str) -> bytes:
        body = inbound(1) + inbound(2) if folder == "INBOX" else sent(1)
        return body + f"{tag} OK Fetch completed\r\n".encode()


def _name(argument: str) -> str:
    """The folder an EXAMINE names, without its parameters (a quoted name has spaces)."""
    if argument.startswith('"'):
        return argument[1 : argument.index('"', 1)]
    return argument.split(" ", 1)[0]


DEFAULTS = {
    "CAPABILITY": b"* CAPABILITY IMAP4rev1 AUTH=PLAIN ENABLE\r\n{tag} OK done\r\n",
    "LOGIN": b"{tag} OK Logged in\r\n",
    "LIST": b'* LIST (\\HasNoChildren) "/" INBOX\r\n* LIST (\\HasNoChildren \\Sent) "/" Sent\r\n'
    b"{tag} OK List completed\r\n",
    "EXAMINE": b"* 2 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 7] UIDs valid\r\n"
    b"* OK [UIDNEXT 3] next\r\n{tag} OK [READ-ONLY] Examine completed\r\n",
    "UID SEARCH": b"* SEARCH 1 2\r\n{tag} OK Search completed\r\n",
    "LOGOUT": b"* BYE Logging out\r\n{tag} OK Logout completed\r\n",
}
