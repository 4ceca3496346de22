"""The digest's links: webmail presets, URL templates and the reply mailto (RFC 6068)."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from inboxwatch.links import PRESETS, bare_id, open_link, open_template, reply_link

VALUES = {
    "message_id": bare_id("<a+b/c&d@x.example>"),
    "subject": "Q&A: 50% off? #1 / Grüße",
    "uid": 42,
    "folder": "Projekte/2026",
    "address": "me+tag@example.com",
}


def test_gmail_searches_the_message_id_in_the_right_account():
    url = open_link(open_template("gmail"), **VALUES)
    assert url == (
        "https://mail.google.com/mail/u/me%2Btag%40example.com/"
        "#search/rfc822msgid%3Aa%2Bb%2Fc%26d%40x.example"
    )
    assert unquote(urlsplit(url).fragment) == "search/rfc822msgid:a+b/c&d@x.example"


def test_roundcube_needs_its_address_and_opens_folder_and_uid():
    with pytest.raises(ValueError, match="roundcube:https://"):
        open_template("roundcube")
    url = open_link(open_template("roundcube:https://webmail.example.org/"), **VALUES)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith("https://webmail.example.org/?_task=mail")
    assert query["_mbox"] == ["Projekte/2026"] and query["_uid"] == ["42"]


def test_every_preset_fills_in():
    for name in PRESETS:
        value = "roundcube:https://w.example" if name == "roundcube" else name
        assert open_link(open_template(value), **VALUES).startswith("https://")


def test_a_template_gets_each_value_encoded_so_it_cannot_reshape_the_url():
    template = open_template("https://mail.example/?s={subject}&id={message_id}#{folder}")
    parts = urlsplit(open_link(template, **VALUES))
    assert parse_qs(parts.query) == {"s": [VALUES["subject"]], "id": [VALUES["message_id"]]}
    assert unquote(parts.fragment) == "Projekte/2026"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gmial", "must be a preset"),
        ("javascript:alert(1)", "must be a preset"),
        ("https://x.example/{messageid}", "unknown placeholder {messageid}"),
        ("https://x.example/{subject!r}", "unknown placeholder"),
        ("https://x.example/{uid:>5}", "unknown placeholder"),
    ],
)
def test_bad_open_urls_are_refused_with_the_reason(value, message):
    with pytest.raises(ValueError, match=message):
        open_template(value)


def test_reply_link_is_rfc_6068():
    link = reply_link("anna+x@client.example", "Angebot & Preis? 100%", "<m/1@client.example>")
    parts = urlsplit(link)
    assert parts.scheme == "mailto" and unquote(parts.path) == "anna+x@client.example"
    assert " " not in link and "&Preis" not in link  # every reserved character encoded
    fields = parse_qs(parts.query)
    assert fields == {
        "subject": ["Re: Angebot & Preis? 100%"],
        "In-Reply-To": ["<m/1@client.example>"],
    }


def test_reply_subject_does_not_stack_re():
    fields = parse_qs(urlsplit(reply_link("a@x.example", "RE: Logo", "")).query)
    assert fields == {"subject": ["RE: Logo"]}  # and no In-Reply-To without a Message-ID
