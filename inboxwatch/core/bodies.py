"""Pending messages' bodies through the source, a folder at a time, for core/refine.py.

A scan asks for its findings' bodies as soon as it has judged them (`ahead`), before it
goes on to re-judge those threads and to list the replies the owner awaits: an IMAP
source sends its FETCH at once, so the answer travels while the scan works (at 100 ms
RTT and 100 Mbit/s, 10,000 pending messages' BODYSTRUCTURE and PREVIEW are a round trip
and ~0.4 s of transfer). What was not asked ahead is asked when read.

Trouble reading bodies is not the scan's: the messages stay as their headers judged
them (flagged, not hidden).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from inboxwatch.core.bodytext import Details
from inboxwatch.core.model import Finding, MessageMeta
from inboxwatch.core.ports import Answer, MailSource
from inboxwatch.errors import InboxwatchError

log = logging.getLogger(__name__)


def _by_folder(pairs: Iterable[tuple[str, Iterable[int]]]) -> dict[str, set[int]]:
    grouped: dict[str, set[int]] = {}
    for folder, uids in pairs:
        grouped.setdefault(folder, set()).update(uids)
    return grouped


class Bodies:
    """One scan's body reads from one source: at most one request in flight, the one
    `ahead` sent; `read` or `settle` takes its answer before anything else is asked."""

    def __init__(self, source: MailSource) -> None:
        self.source = source
        # Asked ahead: the folder, its UIDs, and the answer (None: the ask failed).
        self._ahead: tuple[str, set[int], Answer | None] | None = None

    def ahead(self, findings: Sequence[Finding]) -> None:
        """Ask now for the bodies of the findings' pending messages, in the folder that
        holds most of them (nearly always the only one)."""
        wanted = _by_folder((f.folder, f.uids) for f in findings)
        if not wanted:
            return
        folder = max(wanted, key=lambda name: len(wanted[name]))
        # Kept even when the ask fails: it is not asked again.
        self._ahead = folder, wanted[folder], self._ask(folder, sorted(wanted[folder]))

    def read(self, messages: Sequence[MessageMeta]) -> dict[tuple[str, int], Details]:
        """Details of `messages`, by (folder, UID): the answer asked ahead, and the rest
        asked now."""
        ahead, asked, early = self._take()
        found = {(ahead, uid): d for uid, d in early.items()}
        for folder, uids in _by_folder((m.folder, (m.uid,)) for m in messages).items():
            rest = sorted(uids - asked if folder == ahead else uids)
            answer = self._ask(folder, rest) if rest else None
            if answer is not None:
                found.update(((folder, uid), d) for uid, d in self._answered(folder, answer))
        return found

    def settle(self) -> None:
        """A request asked ahead and never read (the scan failed between): its answer is
        read and dropped, so that the session can be used again."""
        self._take()

    def _take(self) -> tuple[str, set[int], dict[int, Details]]:
        """What was asked ahead and its answer, read once (nothing: empty)."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return "", set(), {}
        folder, uids, answer = ahead
        return folder, uids, {} if answer is None else dict(self._answered(folder, answer))

    def _ask(self, folder: str, uids: list[int]) -> Answer | None:
        try:
            return self.source.ask_details(folder, uids)
        except InboxwatchError as exc:
            _failed(folder, exc)
            return None

    def _answered(self, folder: str, answer: Answer) -> Iterable[tuple[int, Details]]:
        try:
            return answer().items()
        except InboxwatchError as exc:
            _failed(folder, exc)
            return ()


def _failed(folder: str, exc: InboxwatchError) -> None:
    log.warning("reading message bodies in %r failed (%s); judged by headers", folder, exc)
