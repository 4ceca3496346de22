"""A failure to reach or talk to an IMAP server, as the one line a user acts on."""

from __future__ import annotations

import socket
import ssl

from imapclient.exceptions import IMAPClientAbortError

from inboxwatch.errors import ServerError


def network_error(host: str, exc: BaseException, timeout: float) -> ServerError:  # noqa: PLR0911
    """One actionable line for a failure to reach or talk to the server."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or str(exc)
        return ServerError(
            f"TLS certificate of {host} not trusted ({why}); for a private CA set ca_file"
        )
    if isinstance(exc, ssl.SSLError):
        return ServerError(f"TLS handshake with {host} failed ({exc.reason or exc})")
    if isinstance(exc, socket.gaierror):
        return ServerError(f"cannot resolve {host}; check the host name and your network")
    if isinstance(exc, ConnectionRefusedError):
        return ServerError(f"{host} refused the connection; check host, port and security")
    if isinstance(exc, TimeoutError):
        return ServerError(f"{host} did not answer within {timeout:g}s; try again later")
    if isinstance(exc, IMAPClientAbortError | ConnectionError | EOFError):
        return ServerError(f"connection to {host} dropped ({exc}); try again later")
    return ServerError(f"cannot talk to {host}: {exc}")
