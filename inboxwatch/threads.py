"""Join messages into threads: JWZ / RFC 5256 REFERENCES, step 1, plus a guarded subject fallback.

Pure: no I/O, no clock. Every message ends up in exactly one thread, whatever
loops, self-references or duplicate Message-IDs the input holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from inboxwatch.model import MessageMeta, Thread

_PREFIX = re.compile(
    r"^\s*(?:\[[^\[\]]*\]\s*)*"  # RFC 5256 subj-blob: [list-tag] before a prefix
    r"(?:re|aw|sv|vs|antw|odp|ynt|r|rif|wg|fw|fwd|tr|rv|enc|doorst|vl)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE,
)
_BLOB = re.compile(r"^\s*\[[^\[\]]*\]\s*")
_FWD_TRAILER = re.compile(r"\s*\(fwd\)\s*$", re.IGNORECASE)
_FWD_WRAP = re.compile(r"^\[fwd:\s*(.*)\]$", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def base_subject(subject: str) -> str:
    """RFC 5256 base subject: no Re:/AW:/Fwd:/SV: prefixes, [blobs], (fwd) trailers; case-folded."""
    text = _SPACES.sub(" ", subject).strip()
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


@dataclass(eq=False)
class _Container:
    """A node of the id graph; `messages` is empty for an id only referenced."""

    msgid: str
    messages: list[MessageMeta] = field(default_factory=list)
    parent: _Container | None = None

    def root(self) -> _Container:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def has_ancestor(self, other: _Container) -> bool:
        node: _Container | None = self
        while node is not None:
            if node is other:
                return True
            node = node.parent
        return False


def _synthetic_id(msg: MessageMeta) -> str:
    # A stable key for a message without Message-ID (folder + UID are unique per account).
    return f"<no-message-id.{msg.uid}.{msg.folder}@inboxwatch.invalid>"


def _refs(msg: MessageMeta) -> list[str]:
    """References, with In-Reply-To appended when missing (jwz: some clients send only it)."""
    refs = list(msg.references)
    for ref in msg.in_reply_to:
        if ref not in refs:
            refs.append(ref)
    own = msg.message_id
    return [r for r in refs if r != own]  # a self-reference links nothing


class _Graph:
    def __init__(self) -> None:
        self.table: dict[str, _Container] = {}

    def get(self, msgid: str) -> _Container:
        node = self.table.get(msgid)
        if node is None:
            node = self.table[msgid] = _Container(msgid)
        return node

    def add(self, msg: MessageMeta) -> None:
        node = self.get(msg.message_id or _synthetic_id(msg))
        duplicate = bool(node.messages)
        node.messages.append(msg)
        prev: _Container | None = None
        for ref in _refs(msg):
            current = self.get(ref)
            # RFC 5256 step 1A: link consecutive ids unless one already has a
            # parent or the link would close a loop.
            if prev is not None and current.parent is None and not prev.has_ancestor(current):
                current.parent = prev
            prev = current
        if duplicate:
            # A second copy (Gmail labels, Bcc-to-self) shares the first one's place.
            return
        # Step 1C: a message's own References decide its parent, replacing a
        # parent guessed from other messages, unless that would make a loop.
        node.parent = None
        if prev is not None and not prev.has_ancestor(node):
            node.parent = prev


class _Union:
    """Union-find over thread keys; the earlier thread (by `rank`) stays the root."""

    def __init__(self, rank: dict[int, tuple[datetime, str]]) -> None:
        self.parent: dict[int, int] = {}
        self.rank = rank

    def find(self, key: int) -> int:
        root = self.parent.setdefault(key, key)
        while root != self.parent[root]:
            root = self.parent[root]
        while key != root:  # path compression
            key, self.parent[key] = self.parent[key], root
        return root

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            first, second = sorted((ra, rb), key=self.rank.__getitem__)
            self.parent[second] = first


CounterpartMatch = Callable[[MessageMeta, MessageMeta], bool]


def build_threads(
    messages: Iterable[MessageMeta], counterpart: CounterpartMatch | None = None
) -> list[Thread]:
    """Group messages into threads, ordered by their first message's time.

    `counterpart(a, b)` enables the subject fallback: a message with no linking
    headers joins a thread with the same base subject only where it returns
    True for the message and one of that thread's messages.
    """
    graph = _Graph()
    ordered = sorted(messages, key=lambda m: (m.received, m.folder, m.uid))
    for msg in ordered:
        graph.add(msg)
    roots: dict[int, _Container] = {}
    groups: dict[int, list[MessageMeta]] = {}
    for node in graph.table.values():
        if node.messages:
            root = node.root()
            roots[id(root)] = root
            groups.setdefault(id(root), []).extend(node.messages)
    if counterpart is not None:
        rank = {
            key: (min(m.received for m in msgs), roots[key].msgid) for key, msgs in groups.items()
        }
        groups = _subject_fallback(groups, counterpart, _Union(rank))
    threads = [
        Thread(roots[key].msgid, tuple(sorted(msgs, key=lambda m: (m.received, m.folder, m.uid))))
        for key, msgs in groups.items()
    ]
    threads.sort(key=lambda t: (t.messages[0].received, t.thread_id))
    return threads


def _subject_fallback(
    groups: dict[int, list[MessageMeta]], counterpart: CounterpartMatch, union: _Union
) -> dict[int, list[MessageMeta]]:
    """Join a lone unlinked message to the thread its subject and counterpart name."""
    by_subject: dict[str, list[int]] = {}
    for key, msgs in groups.items():
        for subject in {base_subject(m.subject) for m in msgs}:
            if subject:
                by_subject.setdefault(subject, []).append(key)
    for key, msgs in groups.items():
        if len(msgs) != 1 or msgs[0].linked:
            continue
        lone = msgs[0]
        target = _best_candidate(
            lone, by_subject.get(base_subject(lone.subject), []), groups, key, counterpart
        )
        if target is not None:
            union.join(key, target)
    merged: dict[int, list[MessageMeta]] = {}
    for key, msgs in groups.items():
        merged.setdefault(union.find(key), []).extend(msgs)
    return merged


def _best_candidate(
    lone: MessageMeta,
    candidates: Sequence[int],
    groups: dict[int, list[MessageMeta]],
    own_key: int,
    counterpart: CounterpartMatch,
) -> int | None:
    """The candidate thread whose matching message is closest before `lone` in time."""
    best: tuple[float, int] | None = None
    for key in candidates:
        if key == own_key:
            continue
        for other in groups[key]:
            if not (counterpart(lone, other) or counterpart(other, lone)):
                continue
            gap = abs((lone.received - other.received).total_seconds())
            score = gap if other.received <= lone.received else gap + 1e12
            if best is None or score < best[0]:
                best = (score, key)
    return None if best is None else best[1]
