"""Which IMAP and SMTP servers an e-mail address uses, the way mail clients find out.

In order, the first answer wins:
1. a built-in table of the big providers (no network);
2. an autoconfig URL given by the user, then the domain's own autoconfig
   (`autoconfig.<domain>`, then `<domain>/.well-known/autoconfig/`) and Mozilla's
   ISPDB, all in Thunderbird's `config-v1.1.xml` format;
3. the domain's MX: mail handled by Google or Microsoft is theirs whatever the domain;
4. DNS SRV records (RFC 6186, with RFC 8314's implicit-TLS `_imaps`/`_submissions`).
Each network lookup is skipped `offline`, and a failed one only moves on to the next.
"""

from __future__ import annotations

import logging
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

log = logging.getLogger(__name__)
Security = Literal["tls", "starttls", "plain"]
MAX_XML = 128 * 1024  # a config-v1.1.xml is a few KB; more is not one
ISPDB = "https://autoconfig.thunderbird.net/v1.1/{domain}"


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    security: Security


@dataclass(frozen=True)
class Found:
    """Where an address's mail lives, and how that was learnt (`source`)."""

    imap: Server
    smtp: Server | None
    source: str
    username: str = "%EMAILADDRESS%"  # autoconfig's placeholders, filled by `login_name`
    oauth2: str = ""  # google | microsoft: the provider has no passwords, or prefers OAuth
    open_url: str = ""  # the digest's webmail link preset (links.PRESETS)

    def login_name(self, email: str) -> str:
        local, _, domain = email.partition("@")
        return (
            self.username.replace("%EMAILADDRESS%", email)
            .replace("%EMAILLOCALPART%", local)
            .replace("%EMAILDOMAIN%", domain)
        )


def _provider(
    imap: str, smtp: str, smtp_port: int = 465, oauth2: str = "", open_url: str = ""
) -> Found:
    smtp_security: Security = "tls" if smtp_port == 465 else "starttls"
    imap_server, smtp_server = Server(imap, 993, "tls"), Server(smtp, smtp_port, smtp_security)
    return Found(imap_server, smtp_server, "", oauth2=oauth2, open_url=open_url)


_GOOGLE = _provider("imap.gmail.com", "smtp.gmail.com", 465, "google", "gmail")
_MICROSOFT = _provider("outlook.office365.com", "smtp.office365.com", 587, "microsoft", "outlook")
_YAHOO = _provider("imap.mail.yahoo.com", "smtp.mail.yahoo.com")
_ICLOUD = _provider("imap.mail.me.com", "smtp.mail.me.com", 587)
_FASTMAIL = _provider("imap.fastmail.com", "smtp.fastmail.com", 465, "", "fastmail")
_GMX = _provider("imap.gmx.net", "mail.gmx.net", 587)
# The big providers, by domain. Their own autoconfig answers the same, but this works
# offline and knows which of them want OAuth (Microsoft turned passwords off).
PROVIDERS: dict[str, Found] = {
    **dict.fromkeys(("gmail.com", "googlemail.com"), _GOOGLE),
    **dict.fromkeys(
        ("outlook.com", "hotmail.com", "live.com", "msn.com", "outlook.de", "hotmail.de"),
        _MICROSOFT,
    ),
    **dict.fromkeys(("yahoo.com", "yahoo.de", "ymail.com"), _YAHOO),
    **dict.fromkeys(("icloud.com", "me.com", "mac.com"), _ICLOUD),
    **dict.fromkeys(("fastmail.com", "fastmail.fm"), _FASTMAIL),
    **dict.fromkeys(("gmx.de", "gmx.net", "gmx.at", "gmx.ch"), _GMX),
    "web.de": _provider("imap.web.de", "smtp.web.de", 587),
    "aol.com": _provider("imap.aol.com", "smtp.aol.com"),
    "posteo.de": _provider("posteo.de", "posteo.de", 587),
    "mailbox.org": _provider("imap.mailbox.org", "smtp.mailbox.org"),
    "zoho.com": _provider("imap.zoho.com", "smtp.zoho.com"),
    # Proton Mail is read through its Bridge on this machine (STARTTLS, its own password).
    **dict.fromkeys(
        ("proton.me", "protonmail.com", "pm.me"),
        Found(
            Server("127.0.0.1", 1143, "starttls"),
            Server("127.0.0.1", 1025, "starttls"),
            "",
            open_url="proton",
        ),
    ),
}
# Mail exchangers that say whose mail service a domain uses (Workspace, Microsoft 365).
_MX = {"google.com": _GOOGLE, "googlemail.com": _GOOGLE, "outlook.com": _MICROSOFT}
_SOCKET: dict[str, Security] = {"SSL": "tls", "STARTTLS": "starttls", "plain": "plain"}


def parse_autoconfig(text: bytes) -> Found | None:
    """The IMAP and SMTP servers of a Thunderbird `config-v1.1.xml`, preferring TLS."""
    root = ET.fromstring(text)  # expat refuses entity expansion bombs (Python 3.11+)

    def servers(kind: str, kind_type: str) -> list[tuple[Server, str]]:
        found = []
        for node in root.iter(kind):
            security = _SOCKET.get(node.findtext("socketType", "").strip())
            host, port = node.findtext("hostname", "").strip(), node.findtext("port", "")
            if node.get("type") == kind_type and security and host and port.strip().isdigit():
                username = node.findtext("username", "%EMAILADDRESS%").strip()
                found.append((Server(host, int(port), security), username))
        return sorted(found, key=lambda pair: pair[0].security == "plain")

    imap = servers("incomingServer", "imap")
    if not imap:
        return None
    smtp = servers("outgoingServer", "smtp")
    return Found(imap[0][0], smtp[0][0] if smtp else None, "", imap[0][1])


def _fetch(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return bytes(answer.read(MAX_XML + 1))[:MAX_XML]


def _autoconfig(email: str, urls: list[str], timeout: float) -> Iterator[Found]:
    for url in urls:
        try:
            found = parse_autoconfig(_fetch(url, timeout))
        except (OSError, ET.ParseError, ValueError) as exc:
            log.info("autoconfig %s: %s", url, exc)
            continue
        if found is not None:
            yield replace(found, source=f"autoconfig {url.split('?')[0]}")


def _dns(domain: str, timeout: float) -> Iterator[Found]:
    """MX first (a domain on Google or Microsoft), then SRV (RFC 6186)."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver()
    resolver.lifetime = timeout

    def lookup(name: str, kind: str) -> list[object]:
        try:
            return list(resolver.resolve(name, kind))
        except dns.exception.DNSException as exc:
            log.info("DNS %s %s: %s", kind, name, exc)
            return []

    for mx in lookup(domain, "MX"):
        exchange = str(getattr(mx, "exchange", "")).rstrip(".").lower()
        for suffix, found in _MX.items():
            if exchange == suffix or exchange.endswith("." + suffix):
                yield replace(found, source=f"MX {exchange}")
    imap = _srv(lookup, domain, ("_imaps._tcp", "tls"), ("_imap._tcp", "starttls"))
    if imap is not None:
        smtp = _srv(lookup, domain, ("_submissions._tcp", "tls"), ("_submission._tcp", "starttls"))
        yield Found(imap, smtp, f"DNS SRV _imap(s)._tcp.{domain}")


def _srv(
    lookup: Callable[[str, str], list[object]], domain: str, *names: tuple[str, Security]
) -> Server | None:
    for prefix, security in names:
        records = sorted(
            lookup(f"{prefix}.{domain}", "SRV"), key=lambda r: getattr(r, "priority", 0)
        )
        for record in records:
            target = str(getattr(record, "target", "")).rstrip(".")
            if target:  # "." means: no such service here (RFC 2782)
                return Server(target, int(getattr(record, "port", 0)), security)
    return None


def discover(
    email: str, *, offline: bool = False, autoconfig: str = "", timeout: float = 5.0
) -> Found | None:
    """The servers for `email`, or None when nothing answered."""
    domain = email.rpartition("@")[2].lower()
    if domain in PROVIDERS:
        return replace(PROVIDERS[domain], source=f"built-in table ({domain})")
    if offline:
        return None
    query = urllib.parse.urlencode({"emailaddress": email})
    urls = [
        *([f"{autoconfig}{'&' if '?' in autoconfig else '?'}{query}"] if autoconfig else []),
        f"https://autoconfig.{domain}/mail/config-v1.1.xml?{query}",
        f"https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml?{query}",
        ISPDB.format(domain=domain),
    ]
    for found in _autoconfig(email, urls, timeout):
        return found
    for found in _dns(domain, timeout):
        return found
    return None
