"""QRESYNC (RFC 7162 3.2): what an EXAMINE told of a folder's changes since the last poll.

`EXAMINE folder (QRESYNC (uidvalidity modseq))` answers, with the folder's state, what
`UID FETCH 1:* (FLAGS) (CHANGEDSINCE modseq VANISHED)` would (3.2.5.1): the UIDs expunged
since (`* VANISHED (EARLIER) …`) and the flags of every message changed since, new ones
included. A poll after a change then costs the EXAMINE and the FETCH of the new headers,
where a SEARCH for new UIDs, another for the ones still there and a FETCH of changed
flags were each a round trip of their own (imap.changes). Pure data.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from inboxwatch.core.ports import FolderState
from inboxwatch.imap.fetchparse import parse_fetch


@dataclass(frozen=True)
class Resync:
    """An EXAMINE's VANISHED UIDs, as (first, last) ranges, and the changed flags by UID."""

    vanished: list[tuple[int, int]]
    flags: dict[int, frozenset[str]]

    def gone(self, uids: Collection[int]) -> set[int]:
        """Those of `uids` that vanished. Ranges, not UIDs: a server that kept no record of
        which went may answer `1:80000` (3.2.5.1 lets it name UIDs that never were)."""
        if not self.vanished:
            return set()
        starts = [first for first, _ in self.vanished]
        found = set()
        for uid in uids:
            at = bisect.bisect_right(starts, uid) - 1
            if at >= 0 and uid <= self.vanished[at][1]:
                found.add(uid)
        return found


def resync_of(info: Mapping[bytes, Any]) -> Resync:
    """From an EXAMINE's select response as imapclient gives it (VANISHED and FETCH are
    the untagged answers it passes through as they came)."""
    ranges: list[tuple[int, int]] = []
    for line in info.get(b"VANISHED", ()):
        if isinstance(line, bytes):
            ranges.extend(_ranges(line.removeprefix(b"(EARLIER)").strip()))
    flags: dict[int, frozenset[str]] = {}
    for uid, data in parse_fetch(list(info.get(b"FETCH", ())), False).items():
        found = data.get(b"FLAGS")
        if isinstance(found, tuple):
            flags[uid] = frozenset(f.decode("ascii", "replace") for f in found)
    return Resync(_merged(ranges), flags)


def _ranges(text: bytes) -> list[tuple[int, int]]:
    """A sequence-set's parts as (low, high); a server may write a range high to low."""
    out = []
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        if low.isdigit() and (not high or high.isdigit()):
            a, b = int(low), int(high or low)
            out.append((min(a, b), max(a, b)))
    return out


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted and without overlaps, so that one bisection finds a UID's range."""
    out: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(high, out[-1][1]))
        else:
            out.append((low, high))
    return out


def applied(
    resync: Resync, known: FolderState, state: FolderState, cached: set[int]
) -> tuple[set[int], set[int], dict[int, frozenset[str]]] | None:
    """(the UIDs the folder's lookback holds now, those of `cached` gone, the changed flags
    of the rest) by the EXAMINE's answer alone, or None when it does not add up (then the
    folder is asked by UID, imap.changes). New mail is the changed messages above the last
    UIDNEXT (their mod-sequences are all newer). Without anything vanished the message
    count must have grown by exactly the new ones: a server that left out an expunge is
    caught here rather than keeping a deleted message flagged."""
    if known.uidnext is None or known.exists is None or state.exists is None:
        return None
    new = {uid for uid in resync.flags if uid >= known.uidnext}
    if not resync.vanished and state.exists != known.exists + len(new):
        return None
    gone = resync.gone(cached)
    current = (cached - gone) | new
    flags = {uid: f for uid, f in resync.flags.items() if uid in cached and uid not in gone}
    return current, gone, flags
