"""What a pipelined EXAMINE asked (imap.wire) and what came back; the untagged answers it
reads (ESEARCH, RFC 4731; STATUS, RFC 3501 7.2.4) as imaplib keeps them. Pure data."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from inboxwatch.imap.resync import Resync, resync_of
from inboxwatch.imap.sets import uids_in

# `* ESEARCH (TAG "A5") UID ALL 1:3,7` as imaplib keeps it: without `* ESEARCH `. An
# empty result has no ALL (RFC 4731 3.1).
_ESEARCH = re.compile(rb'\(TAG "([^"]*)"\)( UID)?(?: ALL ([0-9:,]+))?')
_MESSAGES = re.compile(rb"\(.*\bMESSAGES (\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Asked:
    """What `WatchedClient.examine_send` sent, for `examine_answer` to read."""

    folder: str
    search: bytes
    examine: bytes  # each command's tag; None: not sent
    status: bytes | None  # another folder's STATUS
    searching: bytes | None  # the SEARCH, saving its result when `fetching` went too
    fetching: bytes | None  # `UID FETCH $` (SEARCHRES)
    resync: bool = False  # the EXAMINE carried QRESYNC (imap.resync)


@dataclass(frozen=True)
class Prefetch:
    """A header FETCH sent with its folder's EXAMINE (`UID FETCH $`) and not read: the
    records of `uids`, answered as `tag` (imap.stream reads them). `early`: imaplib's
    untagged FETCH data that came before the SEARCH's answer (RFC 5182 2.1 has the FETCH
    wait for the SEARCH that saved its set; a server may still write them early)."""

    tag: bytes
    uids: list[int]
    early: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Examined:
    """An EXAMINE's select response; the UIDs its SEARCH found; their FETCH, if sent
    with it; another folder's message count, if asked (None: not known); and with
    QRESYNC, what changed since the state it was given."""

    info: dict[bytes, Any]
    uids: list[int]
    prefetch: Prefetch | None = None
    messages: int | None = None
    resync: Resync | None = None


def esearch_uids(lines: Sequence[Any], tag: bytes) -> list[int] | None:
    """The UIDs of the `UID SEARCH RETURN (… ALL)` sent as `tag`, from imaplib's untagged
    ESEARCH answers (each names its command's tag: pipelined searches may be answered in
    any order); None when none of them is that command's."""
    for line in lines:
        found = _ESEARCH.match(line) if isinstance(line, bytes) else None
        if found is not None and found.group(1) == tag and found.group(2):
            return uids_in(found.group(3)) if found.group(3) else []
    return None


def status_messages(lines: Sequence[Any]) -> int | None:
    """MESSAGES of a STATUS answer (`"INBOX" (MESSAGES 42)`, as imaplib keeps it)."""
    for line in lines:
        found = _MESSAGES.search(line) if isinstance(line, bytes) else None
        if found is not None:
            return int(found.group(1))
    return None


E = TypeVar("E", bound=Exception)


def examined(answer: dict[bytes, Any] | E, resync: bool) -> Examined | E:
    """A pipelined EXAMINE's answer (or its error); with `resync`, it carried QRESYNC."""
    if isinstance(answer, Exception):
        return answer
    return Examined(answer, [], resync=resync_of(answer) if resync else None)
