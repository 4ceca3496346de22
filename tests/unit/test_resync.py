"""imap.resync: QRESYNC's answer to an EXAMINE (RFC 7162 3.2.5.1) read, and applied to
the cached UIDs only where it adds up."""

from __future__ import annotations

from inboxwatch.core.ports import FolderState
from inboxwatch.imap.resync import Resync, applied, resync_of

KNOWN = FolderState(7, 11, 40, 10)  # UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, EXISTS


def info(*, vanished: list[bytes] = (), fetch: list[bytes] = ()) -> dict[bytes, object]:
    """A select response as imapclient passes VANISHED and FETCH through."""
    out: dict[bytes, object] = {b"EXISTS": 10, b"UIDVALIDITY": 7}
    if vanished:
        out[b"VANISHED"] = list(vanished)
    if fetch:
        out[b"FETCH"] = list(fetch)
    return out


def test_vanished_ranges_and_changed_flags_are_read():
    told = resync_of(
        info(
            vanished=[b"(EARLIER) 3,9:7,12:14", b"20"],
            fetch=[b"4 (UID 5 FLAGS (\\Seen $Label) MODSEQ (41))", b"9 (UID 12 FLAGS ())"],
        )
    )
    assert told.vanished == [(3, 3), (7, 9), (12, 14), (20, 20)]  # high-to-low read too
    assert told.flags == {5: frozenset({"\\Seen", "$Label"}), 12: frozenset()}
    assert told.gone({1, 3, 5, 8, 15, 20}) == {3, 8, 20}


def test_a_range_is_never_spelled_out():
    """A server that kept no record of what went may answer with every UID it ever gave:
    the check is by range, whatever its width."""
    told = resync_of(info(vanished=[b"(EARLIER) 1:4294967295"]))
    assert told.vanished == [(1, 4294967295)]
    assert told.gone({5, 6}) == {5, 6}


def test_new_mail_gone_mail_and_flags_of_the_cache():
    cached = {1, 2, 5, 10}
    told = Resync(
        [(2, 2), (30, 30)],  # 30: never cached (outside the lookback)
        {5: frozenset({"\\Answered"}), 11: frozenset(), 12: frozenset({"\\Seen"})},
    )
    now = FolderState(7, 13, 47, 11)
    current, gone, flags = applied(told, KNOWN, now, cached) or ((), (), ())
    assert current == {1, 5, 10, 11, 12} and gone == {2}
    assert flags == {5: frozenset({"\\Answered"})}  # new mail's come with its headers


def test_an_answer_that_does_not_add_up_is_not_trusted():
    """Nothing vanished, yet the count grew by one less than the new UIDs: an expunge the
    server left out. The folder is asked by UID instead of keeping a deleted message."""
    told = Resync([], {11: frozenset(), 12: frozenset()})
    assert applied(told, KNOWN, FolderState(7, 13, 47, 11), {1, 2}) is None
    assert applied(told, KNOWN, FolderState(7, 13, 47, 12), {1, 2}) is not None
    unknown = FolderState(7, None, 40, None)  # a state from before UIDNEXT was kept
    assert applied(told, unknown, FolderState(7, 13, 47, 12), {1, 2}) is None
