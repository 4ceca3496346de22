"""The parsers' generation (core.generation.GENERATION) changes whenever what they make
of a message does, so that a state's cache, read by the parsers before, is read again once
(service.backoff.cache_short): a fixed parser then reaches the mail already cached, and
a message the old ones could not read is fetched again.

Nobody remembers to bump a number; this test does. It parses the shared corpus (real
mail from other projects: broken headers, bounces, a mailing list's month) as a poll
would, headers and bodies, and compares a digest of every field with the one recorded
for the generation. The FETCH parser has its own tests (tests/unit/test_fetchparse.py).

What the stdlib's email package decides is not ours to number: the cache notes the Python
too (core.generation.PARSERS), and the messages it reads otherwise on CI's two Pythons are
left out of the digest (STDLIB_READS)."""

from __future__ import annotations

import email
import gzip
import hashlib
import mailbox
import platform
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from inboxwatch.core.bodytext import details_of
from inboxwatch.core.generation import GENERATION
from inboxwatch.core.parse import parse_headers
from inboxwatch.local.source import _header_block
from tests.conftest import corpus_dir

pytestmark = pytest.mark.corpus
WHEN = datetime(2026, 11, 1, tzinfo=UTC)

# Each generation's digest of the corpus as its parsers read it. A change to the parsers
# that moves the digest gets a new generation (core.generation.GENERATION) and a line
# here; the lines before stay, so a generation is never given two meanings.
DIGESTS = {
    1: "14579c0d0488b3399181d4234563e40a640ef9c6a67a5e45a61980b43e3e35db",
}
# Broken address fields our fast path leaves to the stdlib's getaddresses, whose answers
# changed within 3.11 (gh-102988, CVE-2023-27043): these read otherwise on CPython 3.11.2
# and 3.11.7, the two CI runs the suite on. Another Python may read more of the corpus
# otherwise; the test then names it.
STDLIB_READS = {
    "mikel-mail/error_emails/missing_body.eml",
    "mikel-mail/plain_emails/raw_email_multiple_from.eml",
    "mikel-mail/plain_emails/raw_email_with_at_display_name.eml",
}


def _messages(corpus: Path, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """Every corpus message's bytes, by a name that orders them."""
    for path in sorted((corpus / "mikel-mail").rglob("*.eml")):
        yield str(path.relative_to(corpus)), path.read_bytes()
    for sub in ("bsd", "not"):
        for path in sorted((corpus / "sisimai" / "maildir" / sub).iterdir()):
            yield str(path.relative_to(corpus)), path.read_bytes()
    month = tmp_path / "fedora.mbox"  # decompressed into the test's temp dir
    month.write_bytes(
        gzip.decompress((corpus / "fedora-devel-2010-01" / "2010-January.txt.gz").read_bytes())
    )
    box = mailbox.mbox(month, create=False)
    try:
        for n, key in enumerate(box.keys()):
            yield f"fedora/{n:04d}", box.get_bytes(key)
    finally:
        box.close()


def _digest(corpus: Path, tmp_path: Path) -> tuple[str, int]:
    digest, count = hashlib.sha256(), 0
    for n, (name, raw) in enumerate(_messages(corpus, tmp_path)):
        if name in STDLIB_READS:
            continue
        meta = parse_headers(_header_block(raw), "corpus", n, WHEN, ("\\Seen",))
        details = details_of(email.message_from_bytes(raw))
        digest.update(f"{name}\0{meta!r}\0{details!r}\n".encode())
        count += 1
    return digest.hexdigest(), count


def test_the_parsers_generation_is_bumped_when_what_they_read_changes(tmp_path):
    found, count = _digest(corpus_dir(), tmp_path)
    assert count > 1000  # the whole corpus was read
    assert max(DIGESTS) == GENERATION, "a generation without its digest line in DIGESTS"
    assert DIGESTS[GENERATION] == found, (
        f"the parsers read the corpus differently now (digest {found}, Python "
        f"{platform.python_version()}), so a cache the generation before made holds other "
        "fields: bump core.generation.GENERATION and add its line to DIGESTS, leaving the lines "
        "before as they are"
    )
    assert len(set(DIGESTS.values())) == len(DIGESTS)
