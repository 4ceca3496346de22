"""Every parsing path is linear on adversarial header blocks (issue 22, defect 6).

A sender controls the header block: a blank-padded `Subject:` or `Date:` cut at the
64 KB bound with no line end, or a thousand repeated fields. Before the fix the fast
path took 4 s on 16 KB of blanks and minutes at 64 KB, while the careful (stdlib) path
took milliseconds. Time is measured against the careful path on the same input, never
against a wall-clock constant, so a slow or loaded machine slows both alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from inboxwatch.core.addrlist import simple_addresses
from inboxwatch.core.parse import MAX_HEADER_BYTES, parse_headers

BASE = b"From: a@b.example\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <x@y>\r\n"
# The fast path may cost this many times the careful path's time on the same input; a
# quadratic path at 64 KB costs thousands of times more.
RATIO = 40
NAMES = [b"Subject", b"Date", b"From", b"To", b"Cc", b"Reply-To", b"List-Id", b"References"]
RUNS = [b" ", b"\t", b" \t", b",", b"<", b"@", b'"', b"=?", b"\r\n ", b" ,", b"a@", b"\\"]


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def assert_linear(block: bytes) -> None:
    block = block[:MAX_HEADER_BYTES]
    fast = best_of(3, lambda: parse_headers(block, "INBOX", 1))
    careful = best_of(3, lambda: parse_headers(block, "INBOX", 1, fast=False))
    # A floor of the careful path on a plain block of the same size keeps a careful time
    # of a few microseconds (it gives up early) from making the ratio pure noise.
    plain = BASE + b"X-Pad: " + b"p" * max(0, len(block) - len(BASE) - 9) + b"\r\n"
    floor = best_of(3, lambda: parse_headers(plain, "INBOX", 1, fast=False))
    assert fast <= RATIO * max(careful, floor), (len(block), fast, careful, floor)


def test_a_blank_padded_field_cut_without_a_line_end():
    for name in (b"Subject", b"Date", b"To", b"From"):
        for blank in (b" ", b"\t"):
            assert_linear(BASE + name + b":" + blank * MAX_HEADER_BYTES)


def test_a_thousand_repeated_fields():
    for line in (b"List-Id: <a.b.example>\r\n", b"To: a@b.example\r\n", b"List-Id:\r\n <a>\r\n"):
        assert_linear(BASE + line * 1000)
        assert_linear(line * 1000 + BASE)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.sampled_from(NAMES),
    st.sampled_from(RUNS),
    st.booleans(),
    st.integers(min_value=1, max_value=3),
)
def test_parse_time_per_byte_stays_bounded(name, run, line_end, lines):
    """Any field, any run of one awkward token, cut or ended, once or several times."""
    value = run * (MAX_HEADER_BYTES // (len(run) * lines))
    fields = [name + b": " + value + (b"\r\n" if line_end else b"") for _ in range(lines)]
    assert_linear(BASE + b"".join(fields))


def test_the_fast_address_splitter_on_blank_runs():
    """`simple_addresses` gives up (None) or answers, in time linear in its input."""
    for value in (" " * 60_000, " " * 60_000 + "x", "a" + " " * 60_000 + "<", "x," * 30_000):
        short = best_of(3, lambda v=value[:6_000]: simple_addresses(v))
        long = best_of(3, lambda v=value: simple_addresses(v))
        assert long <= RATIO * max(short, 1e-5) * 10 / 4, (value[:10], short, long)
