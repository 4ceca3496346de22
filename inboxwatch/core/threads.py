"""Join messages into threads: JWZ / RFC 5256 REFERENCES, step 1, plus a guarded subject fallback.

Pure: no I/O, no clock. Every message ends up in exactly one thread, whatever
loops, self-references or duplicate Message-IDs the input holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Protocol

from inboxwatch.core.model import MessageMeta, Thread
from inboxwatch.core.subjects import Bases, Endings


class _Container:
    """A node of the id graph; `message` is None for an id only referenced."""

    __slots__ = ("copies", "message", "msgid", "parent")

    def __init__(self, msgid: str) -> None:
        self.msgid = msgid
        self.message: MessageMeta | None = None  # most ids are only referenced
        # Further messages with this id; a list for each node would cost ~6 MB per 100,000.
        self.copies: list[MessageMeta] | None = None
        self.parent: _Container | None = None

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


def synthetic_id(msg: MessageMeta) -> str:
    """A stable key for a message without Message-ID: the provider's id where it has one
    (Gmail: one per message, whatever label folder it is read from), else the id made of
    its headers that the report shows too (MessageMeta.ident). Two such messages with one
    key are copies of one message, as two with one Message-ID are."""
    if msg.provider_id:
        return f"<no-message-id.{msg.provider_id}@provider.inboxwatch.invalid>"
    return msg.ident


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
        node = self.get(msg.message_id or synthetic_id(msg))
        duplicate = node.message is not None
        if node.message is None:
            node.message = msg
        elif node.copies is None:
            node.copies = [msg]
        else:
            node.copies.append(msg)
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

    def __init__(self, rank: Callable[[int], tuple[datetime, str]]) -> None:
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
            first, second = sorted((ra, rb), key=self.rank)
            self.parent[second] = first


# A message's place in time: (received, folder, uid), ties broken the same way every run.
# attrgetter builds the key tuple in C (a Python key function costs ~0.2 us a message more).
_when = attrgetter("received", "folder", "uid")


Roles = tuple[tuple[str, ...], tuple[str, ...]]  # (the owner's recipients, the other's own)


class Counterpart(Protocol):
    """Who a message is between, for the subject fallback: `roles(msg)` is (the addresses
    the owner sent it to, if the owner's; its sender and Reply-To, if not), so `a` answers
    or is answered by `b` when `roles(a)[0]` and `roles(b)[1]` share an address."""

    def roles(self, msg: MessageMeta) -> Roles: ...


def build_threads(
    messages: Iterable[MessageMeta],
    counterpart: Counterpart | None = None,
    lone: list[MessageMeta] | None = None,
    bases: Bases | None = None,
) -> list[Thread]:
    """Group messages into threads, ordered by their first message's time.

    `counterpart` enables the subject fallback: a message with no linking headers
    joins a thread with the same base subject only where it and one of that
    thread's messages are the owner's and the other party's, either way round.
    `lone`, if given, receives the messages that looked for such a thread. `bases`
    keeps the base subjects taken, for the caller to use again (core.incremental).
    """
    roots, groups = _linked_groups(messages)
    groups = _join_hinted(groups, roots)
    if counterpart is not None:
        linked = groups  # the ranks are of the threads as linked, before any join

        def rank(key: int) -> tuple[datetime, str]:
            return min(m.received for m in linked[key]), roots[key].msgid

        seeking = _seeking(groups, roots)
        union = _Union(rank)
        bases = Bases() if bases is None else bases
        groups = _subject_fallback(groups, seeking, counterpart, union, lone, bases)
    threads = [
        Thread(roots[key].msgid, tuple(msgs if len(msgs) == 1 else sorted(msgs, key=_when)))
        for key, msgs in groups.items()
    ]
    threads.sort(key=lambda t: (t.messages[0].received, t.thread_id))
    return threads


def _linked_groups(
    messages: Iterable[MessageMeta],
) -> tuple[dict[int, _Container], dict[int, list[MessageMeta]]]:
    """RFC 5256 step 1 over the id graph: the messages under each root (the graph is
    dropped on return, before the subject fallback needs its memory)."""
    graph = _Graph()
    for msg in sorted(messages, key=_when):
        graph.add(msg)
    roots: dict[int, _Container] = {}
    groups: dict[int, list[MessageMeta]] = {}
    for node in graph.table.values():
        if node.message is not None:
            root = node.root()
            roots[id(root)] = root
            group = groups.setdefault(id(root), [])
            group.append(node.message)
            if node.copies is not None:
                group.extend(node.copies)
    return roots, groups


_Index = dict[tuple[str, str], list[tuple[int, int, int, MessageMeta]]]


def _seeking(
    groups: dict[int, list[MessageMeta]], roots: dict[int, _Container]
) -> dict[int, MessageMeta]:
    """The threads begun by a message with no linking headers, by that message: alone, or
    with replies linked to it (a reply whose client dropped its headers, answered in
    turn by others, still belongs to the owner's thread it answers)."""
    seeking = {}
    for key, msgs in groups.items():
        first = msgs[0] if len(msgs) == 1 else roots[key].message
        if first is not None and not first.linked:
            seeking[key] = first
    return seeking


def _subject_fallback(
    groups: dict[int, list[MessageMeta]],
    seeking: dict[int, MessageMeta],
    counterpart: Counterpart,
    union: _Union,
    lone_out: list[MessageMeta] | None,
    bases: Bases,
) -> dict[int, list[MessageMeta]]:
    """Join a thread begun by an unlinked message to the thread its subject and
    counterpart name.

    Only a thread whose base subject another thread also has can join one. Those
    threads' messages are indexed under (base subject, address) for each address they
    are "mine" or "theirs" for, so a seeking thread finds its candidates by lookup
    instead of by comparing itself with every thread of that subject.
    """
    lone_subjects = {key: bases[msg.subject] for key, msg in seeking.items()}
    lone = {key: seeking[key] for key, subject in lone_subjects.items() if subject}
    # Only the lone messages' base subjects matter: each thread's are taken among those.
    wanted = {s for s in lone_subjects.values() if s}
    subjects = _subjects_among(groups, lone_subjects, wanted, bases)
    threads_of = Counter(s for names in subjects.values() for s in names)
    if lone_out is not None:
        lone_out.extend(lone.values())
    lone = {key: msg for key, msg in lone.items() if threads_of[subjects[key][0]] > 1}
    lone_roles = {key: counterpart.roles(msg) for key, msg in lone.items()}
    index = _index(groups, subjects, _wanted(lone_roles, subjects), counterpart)
    for key, msg in lone.items():
        subject = subjects[key][0]
        candidates = [
            entry
            for side, addresses in zip(reversed(index), lone_roles[key], strict=True)
            for address in addresses
            for entry in side.get((subject, address), ())
        ]
        target = _best_candidate(msg, candidates, key)
        if target is not None:
            union.join(key, target)
    return _merged(groups, union)


def _join_hinted(
    groups: dict[int, list[MessageMeta]], roots: dict[int, _Container]
) -> dict[int, list[MessageMeta]]:
    """One thread for the messages the provider puts in one conversation (Gmail's
    X-GM-THRID), also where a client dropped the References that would link them."""
    if not any(m.thread_hint for msgs in groups.values() for m in msgs):
        return groups
    union = _Union(lambda key: (min(m.received for m in groups[key]), roots[key].msgid))
    first: dict[str, int] = {}
    for key, msgs in groups.items():
        for msg in msgs:
            if msg.thread_hint:
                union.join(first.setdefault(msg.thread_hint, key), key)
    return _merged(groups, union)


def _merged(groups: dict[int, list[MessageMeta]], union: _Union) -> dict[int, list[MessageMeta]]:
    if not union.parent:
        return groups
    merged: dict[int, list[MessageMeta]] = {}
    for key, msgs in groups.items():
        root = union.find(key) if key in union.parent else key
        merged.setdefault(root, []).extend(msgs)
    return merged


def _subjects_among(
    groups: dict[int, list[MessageMeta]], known: dict[int, str], wanted: set[str], bases: Bases
) -> dict[int, tuple[str, ...]]:
    """Each thread's base subjects that are in `wanted` (`known`: some threads' one base
    subject, already taken). Most subjects are ruled out by their ending alone (subjects.Endings),
    without the cost of taking their base subject."""
    endings = Endings(wanted)
    subjects: dict[int, tuple[str, ...]] = {}
    for key, msgs in groups.items():
        if key in known:
            subjects[key] = (known[key],)
            continue
        names = {s for s in {m.subject for m in msgs} if endings.may_end(s)}
        subjects[key] = tuple(b for b in {bases[s] for s in names} if b in wanted)
    return subjects


def _wanted(
    roles: dict[int, Roles], subjects: dict[int, tuple[str, ...]]
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """The (subject, address) keys lone messages will look up, per side: only those are
    indexed (a lone message of the owner's looks among the other party's, and back)."""
    wanted: tuple[set[tuple[str, str]], set[tuple[str, str]]] = (set(), set())
    for key, (mine, theirs) in roles.items():
        subject = subjects[key][0]
        wanted[1].update((subject, a) for a in mine)
        wanted[0].update((subject, a) for a in theirs)
    return wanted


def _index(
    groups: dict[int, list[MessageMeta]],
    subjects: dict[int, tuple[str, ...]],
    wanted: tuple[set[tuple[str, str]], set[tuple[str, str]]],
    counterpart: Counterpart,
) -> tuple[_Index, _Index]:
    """(the owner's messages, the other party's) by (subject, address), `wanted` keys only;
    each entry is (thread rank, position in thread, thread key, message)."""
    subjects_wanted = {subject for side in wanted for subject, _ in side}
    index: tuple[_Index, _Index] = ({}, {})
    for rank, (key, msgs) in enumerate(groups.items()):
        names = [s for s in subjects[key] if s in subjects_wanted]
        for pos, msg in enumerate(msgs if names else ()):
            for side, want, addresses in zip(index, wanted, counterpart.roles(msg), strict=True):
                for found in {(s, a) for a in addresses for s in names} & want:
                    side.setdefault(found, []).append((rank, pos, key, msg))
    return index


def _best_candidate(
    lone: MessageMeta, candidates: Sequence[tuple[int, int, int, MessageMeta]], own_key: int
) -> int | None:
    """The candidate thread whose matching message is closest before `lone` in time
    (ties: the earlier thread, then the earlier message in it)."""
    best: tuple[float, int, int, int] | None = None
    for rank, pos, key, other in candidates:
        if key == own_key:
            continue
        gap = abs((lone.received - other.received).total_seconds())
        score = gap if other.received <= lone.received else gap + 1e12
        if best is None or (score, rank, pos) < best[:3]:
            best = (score, rank, pos, key)
    return None if best is None else best[3]
