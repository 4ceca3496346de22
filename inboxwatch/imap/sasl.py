"""SASL on an IMAP session, through imaplib's public `authenticate`."""

from __future__ import annotations

from imapclient import IMAPClient

from inboxwatch.imap.wire import connection


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
