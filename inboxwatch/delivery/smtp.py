"""Deliver the digest by SMTP (tls, starttls, plain on loopback) with retries, or to stdout.

Transient failures (4xx replies, refused or dropped connections, timeouts)
are retried with growing delays; permanent ones (5xx, authentication, TLS
trust) are not. A digest the server did not accept is never reported sent.
"""

from __future__ import annotations

import base64
import copy
import logging
import smtplib
import socket
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from email.message import EmailMessage

from inboxwatch.auth.refresh import TokenSource
from inboxwatch.config import Smtp, resolve_secret
from inboxwatch.errors import AuthError, ConfigError, DeliveryError, ServerError
from inboxwatch.net import is_loopback, operation_deadline, shut_down, tls_context, within

log = logging.getLogger(__name__)
DELAYS = (2.0, 8.0, 30.0)  # seconds before the 2nd, 3rd and 4th attempt; then 30 s each


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _auth_xoauth2(client: smtplib.SMTP, user: str, token: str) -> None:
    """AUTH XOAUTH2 with its initial response (RFC 4954 4), in UTF-8 as imaplib sends
    IMAP's: smtplib writes its AUTH strings as ASCII, and for a user name beyond ASCII its
    UnicodeEncodeError quoted the token. A refused token gets a 334 carrying a base64 JSON
    error, answered with an empty line, then 535 (Gmail, Microsoft 365). Raises as
    smtplib's `auth` does."""
    blob = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    code, reply = client.docmd("AUTH", "XOAUTH2 " + base64.b64encode(blob).decode("ascii"))
    if code == 334:
        code, reply = client.docmd("")
    if code not in (235, 503):  # 503: signed in already, as smtplib takes it
        raise smtplib.SMTPAuthenticationError(code, reply)


def _auth_plain_utf8(client: smtplib.SMTP, host: str, user: str, password: str) -> None:
    """AUTH PLAIN in UTF-8 (RFC 4616, RFC 4954) for a user name or password beyond ASCII:
    smtplib encodes its AUTH strings as ASCII, and the UnicodeEncodeError it raised quoted
    the password. Raises as smtplib's login does."""
    offered = client.esmtp_features.get("auth", "").upper().split()
    if "PLAIN" not in offered:
        raise AuthError(
            f"SMTP login to {host} failed: the user name or password has characters "
            "beyond ASCII, which need AUTH PLAIN, and the server does not offer it"
        )
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    code, reply = client.docmd("AUTH", "PLAIN " + plain)
    if code != 235:  # RFC 4954 6: 235 is the one success
        raise smtplib.SMTPAuthenticationError(code, reply)


def _reply_error(host: str, exc: smtplib.SMTPResponseException) -> ServerError:
    """An SMTP reply code as an error: 4xx is transient (retried), 5xx permanent."""
    return ServerError(
        f"SMTP server {host} answered {exc.smtp_code} {_text(exc.smtp_error)}",
        retryable=400 <= exc.smtp_code < 500,
    )


def auth_hint(host: str, code: int, text: str) -> str:
    """What to do about a rejected SMTP login, for the providers people actually use."""
    lowered = text.lower()
    if "5.7.30" in text or "basic authentication is" in lowered:
        return (
            "Microsoft 365 has basic authentication (passwords) switched off for SMTP in "
            "this tenant; an administrator must allow SMTP AUTH, or use another relay"
        )
    if "5.7.9" in text or "application-specific" in lowered or "gmail" in host.lower():
        return "Gmail needs an app password (see the README FAQ)"
    return "check smtp.username and the SMTP password"


def _tls_trouble(host: str, exc: ssl.SSLError) -> ServerError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or str(exc)
        return ServerError(
            f"TLS certificate of SMTP server {host} not trusted ({why}); "
            "for a private CA set smtp.ca_file",
            retryable=False,
        )
    return ServerError(
        f"TLS handshake with SMTP server {host} failed ({exc.reason or exc})", retryable=False
    )


class SmtpSender:
    """Sends one message through the configured SMTP server."""

    def __init__(
        self,
        config: Smtp,
        delays: Sequence[float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        *,
        tokens: TokenSource | None = None,
    ) -> None:
        if not config.host:
            raise ConfigError("smtp.host is not set; the digest needs an SMTP server")
        if config.security == "plain" and not (is_loopback(config.host) or config.allow_insecure):
            raise ConfigError(
                "smtp.security: plain SMTP sends mail and password in clear; use "
                "tls or starttls, or set allow_insecure = true"
            )
        self.config = config
        self.tokens = tokens  # auth = oauth2 (auth.refresh.smtp_tokens): SASL XOAUTH2
        self.password = (
            resolve_secret(config, "smtp", "INBOXWATCH_SMTP__PASSWORD")
            if config.username and tokens is None
            else None
        )
        if delays is None:
            delays = [DELAYS[min(n, len(DELAYS) - 1)] for n in range(config.retries)]
        self.delays = tuple(delays)
        self.sleep = sleep

    def _connect(self, client: smtplib.SMTP, context: ssl.SSLContext) -> None:
        c = self.config
        code, text = client.connect(c.host, c.port or (465 if c.security == "tls" else 587))
        if code != 220:  # what SMTP(host) checks itself (RFC 5321 4.2: 554 = no service)
            client.close()
            raise smtplib.SMTPConnectError(code, text)
        if c.security == "starttls":
            client.ehlo()
            if not client.has_extn("starttls"):
                client.close()
                raise ServerError(
                    f"SMTP server {c.host} does not offer STARTTLS; refusing to "
                    'send in clear (use security = "tls" on port 465 if offered)',
                    retryable=False,
                )
            client.starttls(context=context)

    def _deadline(self, client: smtplib.SMTP, what: str) -> AbstractContextManager[None]:
        """`what` (connect, banner and login; one transaction) within 1.5 × smtp.timeout."""
        seconds = operation_deadline(self.config.timeout.total_seconds())
        slow = ServerError(
            f"SMTP server {self.config.host} answered too slowly: {what} took over {seconds:g}s"
        )
        return within(seconds, lambda: shut_down(client.sock), slow)

    def open(self) -> smtplib.SMTP:
        """Connected, TLS as configured, logged in: ready to send."""
        c = self.config
        context = tls_context(c.ca_file)
        timeout = c.timeout.total_seconds()
        client = (
            smtplib.SMTP_SSL(timeout=timeout, context=context)
            if c.security == "tls"
            else smtplib.SMTP(timeout=timeout)
        )
        # Made without a host (connected under the deadline), smtplib leaves `_host` empty,
        # and both TLS paths check the certificate against it (server_hostname).
        client._host = c.host  # type: ignore[attr-defined]  # typeshed omits it
        with self._deadline(client, "connect and log in"):
            self._login(client, context)
        return client

    def _login(self, client: smtplib.SMTP, context: ssl.SSLContext) -> None:
        host = self.config.host
        try:
            self._connect(client, context)
            client.ehlo_or_helo_if_needed()
            self._authenticate(client)
        except smtplib.SMTPAuthenticationError as exc:
            text = _text(exc.smtp_error)
            raise AuthError(
                f"SMTP login to {host} failed ({exc.smtp_code} {text}); "
                f"{auth_hint(host, exc.smtp_code, text)}"
            ) from None
        except UnicodeEncodeError:  # smtplib writes commands as ASCII; AUTH, which would
            raise ServerError(  # hold a secret, never goes through it (_auth_*): EHLO does
                f"cannot talk to SMTP server {host}: this machine's host name, which EHLO "
                "sends, has characters beyond ASCII; give it an ASCII (IDNA) name",
                retryable=False,
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryError(
                f"SMTP server {host} offers no AUTH on this connection; check "
                "smtp.security and smtp.port"
            ) from None
        except ssl.SSLError as exc:
            raise _tls_trouble(host, exc) from exc
        except socket.gaierror:
            raise ServerError(f"cannot resolve SMTP host {host}", retryable=False) from None
        except ConnectionRefusedError:
            raise ServerError(
                f"SMTP server {host} refused the connection; check smtp.host, "
                "smtp.port and smtp.security"
            ) from None
        except TimeoutError:
            raise ServerError(
                f"SMTP server {host} did not answer within {self.config.timeout.total_seconds():g}s"
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _reply_error(host, exc) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ServerError(
                f"cannot talk to SMTP server {host}: {exc or type(exc).__name__}"
            ) from exc

    def _authenticate(self, client: smtplib.SMTP) -> None:
        if self.tokens is not None:
            self._xoauth2(client, self.tokens)
        elif self.password is not None:
            user, password = self.config.username, self.password
            if user.isascii() and password.isascii():
                client.login(user, password)
            else:
                _auth_plain_utf8(client, self.config.host, user, password)

    def _xoauth2(self, client: smtplib.SMTP, tokens: TokenSource) -> None:
        """AUTH XOAUTH2 (Microsoft 365 rejects OAUTHBEARER), once more with a renewed token
        when the server refuses the first. A refusal comes as a 334 carrying a base64 JSON
        error, answered with an empty line, then 535."""
        token = tokens.access_token()
        try:
            _auth_xoauth2(client, self.config.username, token)
        except smtplib.SMTPAuthenticationError:
            token = tokens.access_token(rejected=token)
            try:
                _auth_xoauth2(client, self.config.username, token)
            except smtplib.SMTPAuthenticationError as exc:
                raise AuthError(
                    f"SMTP server {self.config.host} refused the OAuth token ({exc.smtp_code} "
                    f"{_text(exc.smtp_error)}); check the app's SMTP.Send permission and that "
                    "authenticated SMTP is on for this mailbox (README FAQ)"
                ) from None

    def _send_once(self, msg: EmailMessage) -> None:
        client = self.open()
        try:
            with self._deadline(client, "sending the digest"):
                self._transfer(client, msg)
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()

    def _transfer(self, client: smtplib.SMTP, msg: EmailMessage) -> None:
        try:
            client.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(exc.recipients)
            raise DeliveryError(
                f"SMTP server refused the recipients {refused}; check digest.to"
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _reply_error(self.config.host, exc) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ServerError(
                f"connection to {self.config.host} dropped while sending: {exc}"
            ) from exc

    def send(self, msg: EmailMessage) -> None:
        """Deliver, retrying transient failures; DeliveryError (exit 6) when it cannot."""
        attempts = len(self.delays) + 1
        for attempt in range(1, attempts + 1):
            try:
                self._send_once(msg)
                return
            except ServerError as exc:
                if not exc.retryable or attempt == attempts:
                    raise DeliveryError(
                        f"digest not delivered: {exc} (after {attempt} attempt"
                        f"{'s' if attempt > 1 else ''})"
                    ) from exc
                delay = self.delays[attempt - 1]
                log.warning("digest delivery failed (%s); retrying in %gs", exc, delay)
                self.sleep(delay)


class StdoutSender:
    """--dry-run: the complete MIME message on stdout, nothing sent; its text parts in
    8bit UTF-8 rather than quoted-printable, so a person can read them (the message
    sent keeps quoted-printable, which every relay carries)."""

    def send(self, msg: EmailMessage) -> None:
        shown = copy.deepcopy(msg)
        for part in shown.walk():
            if part.get_content_maintype() == "text":
                text = part.get_content()
                part.set_content(text, subtype=part.get_content_subtype(), cte="8bit")
                if part is not shown:
                    del part["MIME-Version"]  # set_content adds it; a part has none
        # as_string() would turn 8bit UTF-8 back into base64 (the str generator cannot
        # carry raw bytes); as_bytes() keeps it, and it is UTF-8 throughout.
        sys.stdout.write(shown.as_bytes().decode("utf-8", "replace"))
        sys.stdout.flush()
