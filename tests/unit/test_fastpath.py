"""The fast paths give exactly what the careful paths give: on the whole shared corpus, on a
generated mailbox, on hostile mail, and on random header blocks (Hypothesis)."""

from __future__ import annotations

import gzip
import mailbox
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import getaddresses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.mailgen import messages as generated
from inboxwatch.core.addrlist import simple_addresses
from inboxwatch.core.parse import fast_fields, parse_headers
from inboxwatch.imap.fetchitems import parse_fetch
from inboxwatch.local.source import _header_block
from tests.conftest import corpus_dir
from tests.integration.test_hostile import hostile_messages

WHEN = datetime(2026, 11, 1, tzinfo=UTC)


def corpus_blocks(corpus: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted((corpus / "mikel-mail").rglob("*.eml")):
        yield path.name, _header_block(path.read_bytes())
    for path in sorted((corpus / "sisimai" / "maildir").rglob("*")):
        if path.is_file():
            yield path.name, _header_block(path.read_bytes())
    for path in sorted((corpus / "imaptest-thread").glob("*.mbox")):
        for n, key in enumerate(mailbox.mbox(path).keys()):
            yield f"{path.name}#{n}", _header_block(mailbox.mbox(path).get_bytes(key))


def fedora_blocks(corpus: Path, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    path = tmp_path / "fedora.mbox"
    path.write_bytes(
        gzip.decompress((corpus / "fedora-devel-2010-01" / "2010-January.txt.gz").read_bytes())
    )
    box = mailbox.mbox(path)
    for n, key in enumerate(box.keys()):
        yield f"fedora#{n}", _header_block(box.get_bytes(key))


def assert_same(name: str, block: bytes) -> bool:
    fast = parse_headers(block, "f", 1, WHEN, ["\\Seen"])
    careful = parse_headers(block, "f", 1, WHEN, ["\\Seen"], fast=False)
    assert fast == careful, name
    return fast_fields(block[:65536]) is not None


@pytest.mark.corpus
def test_fast_equals_careful_on_the_whole_corpus(tmp_path):
    corpus = corpus_dir()
    blocks = [*corpus_blocks(corpus), *fedora_blocks(corpus, tmp_path)]
    fast = sum(assert_same(name, block) for name, block in blocks)
    print(f"\nfast path: {len(blocks)} corpus messages identical; {fast} took the fast splitter")
    assert len(blocks) > 1000 and fast > len(blocks) * 0.5


def test_fast_equals_careful_on_generated_and_hostile_mail():
    now = datetime(2026, 11, 24, tzinfo=UTC)
    blocks = [
        (f"gen#{n}", _header_block(m)) for n, (_f, m, _w, _fl) in enumerate(generated(3000, now))
    ]
    blocks += [(f"hostile#{n}", _header_block(m)) for n, m in enumerate(hostile_messages())]
    fast = sum(assert_same(name, block) for name, block in blocks)
    assert fast >= 3000  # the generated mail is plain and takes the fast path


header_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["From", "To", "Cc", "Subject", "Reply-To", "Message-ID", "References", "X-A"]
            ),
            header_text,
        ),
        max_size=6,
    )
)
def test_fast_equals_careful_on_random_headers(fields):
    block = "".join(f"{name}: {value}\r\n" for name, value in fields).encode() + b"\r\n"
    assert_same(repr(block), block)


@settings(max_examples=300, deadline=None)
@given(header_text)
def test_simple_addresses_agree_with_getaddresses(value):
    simple = simple_addresses(value)
    if simple is not None:
        assert simple == getaddresses([value])


def test_parse_fetch_is_strict():
    header = b"From: a@b\r\n\r\n"
    good = [
        (
            b'7 (UID 42 FLAGS (\\Seen \\Answered) INTERNALDATE "24-Nov-2026 09:00:00 +0100" '
            b"BODY[HEADER.FIELDS (FROM)] {13}",
            header,
        ),
        b")",
    ]
    [(uid, block, flags, date, _ids)] = parse_fetch(good)
    assert (uid, block, flags) == (42, header, frozenset({"\\Seen", "\\Answered"}))
    assert date == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    items_after = [
        (b"7 (BODY[HEADER.FIELDS (FROM)] {13}", header),
        b' UID 42 FLAGS () INTERNALDATE " 4-Nov-2026 09:00:00 -0000")',
    ]
    assert parse_fetch(items_after)[0][0] == 42
    assert parse_fetch([b"8 (FLAGS (\\Seen))"]) is None  # unsolicited: imapclient decides
    assert parse_fetch([(b"7 (UID 42 BODY[HEADER.FIELDS (FROM)] {13}", header), b")"]) is None


@pytest.mark.parametrize(
    "value", ["Bob \xa0 <a@b.c>", "Bob\xa0<a@b.c>", "\xa0Bob <a@b.c>", "Bob \x1c <a@b.c>"]
)
def test_a_name_keeps_the_blanks_the_stdlib_keeps(value):
    """Found by fuzzing: the stdlib strips only space, tab, CR and LF around a name."""
    simple = simple_addresses(value)
    assert simple is None or simple == getaddresses([value])
