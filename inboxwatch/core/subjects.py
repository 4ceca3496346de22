"""RFC 5256 section 2.1's base subject: what the subject fallback compares (core/threads.py)
and what `explain --subject` looks for. Pure."""

from __future__ import annotations

import re
from functools import lru_cache

# Reply and forward prefixes in many languages (Re, AW, SV, Antw, Odp, Ynt, Rif, WG, TR, RV...).
_PREFIX_WORDS = "re aw sv vs antw odp ynt r rif wg fw fwd tr rv enc doorst vl".split()  # noqa: SIM905
_PREFIX = re.compile(
    r"^\s*(?:\[[^\[\]]*\]\s*)*"  # RFC 5256 subj-blob: [list-tag] before a prefix
    rf"(?:{'|'.join(_PREFIX_WORDS)})"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE,
)
_SIMPLE_PREFIXES = frozenset(_PREFIX_WORDS)
_BLOB = re.compile(r"^\s*\[[^\[\]]*\]\s*")
_FWD_TRAILER = re.compile(r"\s*\(fwd\)\s*$", re.IGNORECASE)
_FWD_WRAP = re.compile(r"^\[fwd:\s*(.*)\]$", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=1 << 15)
def base_subject(subject: str) -> str:
    """RFC 5256 base subject: no Re:/AW:/Fwd:/SV: prefixes, [blobs], (fwd) trailers; case-folded."""
    plain = subject.isascii() and subject.isprintable() and "  " not in subject
    text = subject.strip() if plain else _SPACES.sub(" ", subject).strip()
    if _bare(text):
        return text.casefold()  # no prefix, blob or trailer to take off: most subjects
    head, colon, rest = text.partition(": ")
    if colon and head.isascii() and head.lower() in _SIMPLE_PREFIXES and _bare(rest):
        return rest.strip().casefold()  # "Re: X": one prefix and nothing else, most replies
    return strip_subject(text)


class Bases(dict[str, str]):
    """Base subjects taken once each within one build of threads (core.threads) and the
    indexes made from it (core.incremental): a 100,000-message mailbox has ~70,000
    distinct subjects, more than base_subject's cache holds, and the fallback, the
    threads' subjects and the memo's indexes ask for the same ones in turn: each was
    taken three times (bench/README.md, issue 21). Dropped with the build."""

    def __missing__(self, subject: str) -> str:
        base = self[subject] = base_subject(subject)
        return base


def strip_subject(text: str) -> str:
    """RFC 5256 section 2.1's steps on `text` (white space already folded), to a fixed point."""
    previous = None
    while previous != text:
        previous = text
        text = _PREFIX.sub("", text)
        text = _FWD_TRAILER.sub("", text)
        wrapped = _FWD_WRAP.match(text)
        if wrapped:
            text = wrapped.group(1)
        unblobbed = _BLOB.sub("", text)
        if unblobbed:  # a subject that is only a blob keeps it (RFC 5256 5.(5))
            text = unblobbed
    return text.strip().casefold()


def _bare(text: str) -> bool:
    """Nothing in `text` that RFC 5256 would take off: no colon, blob or trailer."""
    return ":" not in text and "：" not in text and "[" not in text and not text.endswith(")")


class Endings:
    """Whether a subject's base subject may be one of `wanted`, without taking it.

    RFC 5256 2.1 takes text off a subject's front, up to a ":" or "]" and the spaces
    after it, except a "(fwd)" trailer and a "[fwd: ...]" wrapper: a plain subject
    (printable ASCII, single spaces) that ends in neither ")" nor "]" has as base
    subject itself or what follows one of its ":" or "]", case-folded."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted

    def may_end(self, subject: str) -> bool:
        text = subject.strip()
        if not (subject.isascii() and subject.isprintable() and "  " not in subject):
            return True  # white space to fold, or non-ASCII case folding: ask base_subject
        if text.endswith((")", "]")):
            return True
        folded = text.lower()  # casefold() of ASCII
        if folded in self.wanted:
            return True
        for mark in (":", "]"):
            at = folded.find(mark)
            while at >= 0:
                if folded[at + 1 :].lstrip(" ") in self.wanted:
                    return True
                at = folded.find(mark, at + 1)
        return False
