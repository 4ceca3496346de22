"""Server discovery's pure parts: Thunderbird's autoconfig XML and the built-in table."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from inboxwatch.setup.discover import PROVIDERS, Server, discover, parse_autoconfig

ISPDB_STYLE = b"""<?xml version="1.0"?>
<clientConfig version="1.1"><emailProvider id="example.org">
  <incomingServer type="pop3"><hostname>pop.example.org</hostname><port>995</port>
    <socketType>SSL</socketType><username>%EMAILADDRESS%</username></incomingServer>
  <incomingServer type="imap"><hostname>imap.example.org</hostname><port>143</port>
    <socketType>plain</socketType><username>%EMAILLOCALPART%</username></incomingServer>
  <incomingServer type="imap"><hostname>imap.example.org</hostname><port>993</port>
    <socketType>SSL</socketType><username>%EMAILLOCALPART%</username></incomingServer>
  <outgoingServer type="smtp"><hostname>smtp.example.org</hostname><port>587</port>
    <socketType>STARTTLS</socketType></outgoingServer>
</emailProvider></clientConfig>"""


def test_autoconfig_prefers_tls_and_fills_the_username():
    found = parse_autoconfig(ISPDB_STYLE)
    assert found is not None
    assert found.imap == Server("imap.example.org", 993, "tls")
    assert found.smtp == Server("smtp.example.org", 587, "starttls")
    assert found.login_name("sam@example.org") == "sam"


@pytest.mark.parametrize(
    "xml",
    [
        b"<clientConfig/>",
        b"<clientConfig><incomingServer type='imap'><hostname>x</hostname>"
        b"<port>abc</port><socketType>SSL</socketType></incomingServer></clientConfig>",
    ],
)
def test_autoconfig_without_a_usable_imap_server_is_none(xml):
    assert parse_autoconfig(xml) is None


def test_an_entity_bomb_is_refused_not_expanded():
    """A hostile autoconfig server's billion laughs: expat (2.4+) stops it at once."""
    levels = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    bomb = f'<!DOCTYPE x [<!ENTITY l0 "lol">{levels}]><clientConfig>&l9;</clientConfig>'
    with pytest.raises(ET.ParseError, match="amplification"):
        parse_autoconfig(bomb.encode())


def test_the_big_providers_are_known_offline():
    assert discover("a@gmail.com", offline=True).oauth2 == "google"
    assert discover("a@outlook.com", offline=True).imap.host == "outlook.office365.com"
    assert discover("a@proton.me", offline=True).imap == Server("127.0.0.1", 1143, "starttls")
    assert discover("a@nowhere.example", offline=True) is None
    assert all(p.imap.port for p in PROVIDERS.values())
