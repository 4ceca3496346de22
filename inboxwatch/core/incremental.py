"""A running service's threads, redone only where a poll changed something (their
verdicts: core.verdicts).

A poll after ten new messages should not re-thread and re-judge 100,000. The
result is always exactly what `build_threads` and `evaluate` give for the whole
mailbox (tests/unit/test_incremental.py compares them over random changes): the
threads a change touches are rebuilt by `build_threads` itself, on their own
messages plus the changed ones and less the removed ones (archived, expunged, or
past the lookback), with the threads the subject fallback could join them to
(core.reach); a change of owner or policy, or one too wide, rebuilds everything.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from itertools import repeat
from operator import attrgetter

from inboxwatch.core.model import MessageMeta, Thread
from inboxwatch.core.reach import held, meets, put, take
from inboxwatch.core.subjects import Bases, base_subject
from inboxwatch.core.threads import Counterpart, build_threads, synthetic_id

Key = tuple[str, int]
MAX_CHANGED = 2000  # beyond this a full rebuild costs about the same
# How often ThreadMemo._patch widens what it rebuilds to the threads the subject fallback
# could reach before it rebuilds everything: most patches need no widening, and a new
# message on an old subject between the same two parties needs one.
_WIDENINGS = 8


# A message's place in the memo, (folder, uid): the tuple is built in C.
_key: Callable[[MessageMeta], Key] = attrgetter("folder", "uid")


def _where(messages: Iterable[MessageMeta], keys: Mapping[int, Key] | None) -> Iterable[Key]:
    """The messages' keys: the tuples `keys` holds by id(message), else new ones."""
    return map(_key, messages) if keys is None else map(keys.__getitem__, map(id, messages))


def linked_ids(msg: MessageMeta) -> Iterable[str]:
    """The ids by which threading links a message to others (core.splice finds by them).
    Its own id as the graph keys it: a message without Message-ID shares its node with
    every copy of it (threads.synthetic_id), and a copy arriving later must find it."""
    yield msg.message_id or synthetic_id(msg)
    yield from msg.references
    yield from msg.in_reply_to
    if msg.thread_hint:  # a link as much as a reference is (threads._join_hinted)
        yield f"thread-hint:{msg.thread_hint}"


def _subjects(messages: Sequence[MessageMeta], bases: Mapping[str, str] | None = None) -> set[str]:
    """The thread's base subjects (most have one: replies' prefixes are taken off)."""
    take = base_subject if bases is None else bases.__getitem__
    return set(map(take, {m.subject for m in messages}))


def _thread_ids(messages: Sequence[MessageMeta]) -> set[str]:
    """Every id the thread's messages name, once (as `linked_ids` gives them)."""
    ids: set[str] = set()
    for msg in messages:
        ids.update(msg.references)
        ids.update(msg.in_reply_to)
        ids.add(msg.message_id or synthetic_id(msg))
        if msg.thread_hint:
            ids.add(f"thread-hint:{msg.thread_hint}")
    return ids


class ThreadMemo:
    """The last thread set, with the indexes that find what a change touches."""

    def __init__(self) -> None:
        self._context: object = None
        self._reset({})

    def _reset(self, messages: dict[Key, MessageMeta]) -> None:
        self.messages = messages
        # Their ids: a poll finds what changed by identity (a set lookup each), not by
        # key (a tuple built and hashed each: ~15 ms more a poll at 100,000).
        self._objects = {id(m) for m in messages.values()}
        self.threads: dict[int, Thread] = {}
        self._of_key: dict[Key, Thread] = {}
        # id -> the thread (or, rarely, threads) whose messages name it
        self._of_id: dict[str, int | set[int]] = {}
        self._of_subject: dict[str, int | set[int]] = {}  # base subject -> threads
        self._lone: dict[str, Key | set[Key]] = {}  # base subject -> messages seeking one
        self._lone_keys: set[Key] = set()
        # A rebuild's threads not yet indexed (`settle`): a running service indexes them
        # between polls, so its first poll gives its report ~0.35 s sooner at 100,000.
        self._unindexed: tuple[list[Thread], list[MessageMeta], Bases, dict[int, Key]] | None
        self._unindexed = None

    def update(
        self, messages: Sequence[MessageMeta], counterpart: Counterpart, context: object
    ) -> list[Thread]:
        """The threads of `messages`; `context` (owner, policy) changing means a rebuild."""
        known = self._objects  # what the memo holds, by identity: the cache hands back these
        changed = [m for m in messages if id(m) not in known]
        replaced = sum(_key(m) in self.messages for m in changed)
        went = len(self.messages) - replaced - (len(messages) - len(changed))
        if context != self._context or len(changed) + went > MAX_CHANGED:
            self._rebuild({_key(m): m for m in messages}, counterpart)
        elif changed or went:
            self.settle()  # what a change touches is found through the indexes
            gone = self._gone(messages) if went else []
            changed = self._reflag(changed)
            if (changed or gone) and not self._patch(changed, gone, counterpart):
                self._rebuild({_key(m): m for m in messages}, counterpart)
        self._context = context
        return list(self.threads.values())

    def _gone(self, messages: Sequence[MessageMeta]) -> list[Key]:
        """The memo's messages `messages` no longer hold (the owner archived or deleted
        them, or they fell out of the lookback): most polls of a big mailbox lose a few."""
        present = set(map(_key, messages))
        return [key for key in self.messages if key not in present]

    def _store(self, msg: MessageMeta) -> None:
        old = self.messages.get(_key(msg))
        if old is not None:
            self._objects.discard(id(old))
        self.messages[_key(msg)] = msg
        self._objects.add(id(msg))

    def _reflag(self, changed: list[MessageMeta]) -> list[MessageMeta]:
        """Threading never looks at flags: a message whose flags alone changed takes its old
        place in its thread. Returns the changes that are more than that."""
        rest = []
        for msg in changed:
            old = self.messages.get(_key(msg))
            if old is None or old._replace(flags=msg.flags) != msg:
                rest.append(msg)
                continue
            thread = self._of_key[_key(msg)]
            swapped = Thread(
                thread.thread_id, tuple(msg if m is old else m for m in thread.messages)
            )
            self._forget(id(thread), thread)
            self._store(msg)
            self._add([swapped], [])
        return rest

    def _rebuild(self, current: dict[Key, MessageMeta], counterpart: Counterpart) -> None:
        self._reset({})  # the old indexes go first: a rebuild should not hold two sets
        lone: list[MessageMeta] = []
        bases = Bases()  # the build's base subjects, taken again by the indexes
        threads = build_threads(current.values(), counterpart, lone, bases)
        self._reset(current)
        self.threads = {id(thread): thread for thread in threads}
        # The indexes share the key tuples of `current` (~56 bytes a message each less).
        keys = dict(zip(map(id, current.values()), current, strict=True))
        self._unindexed = (threads, lone, bases, keys)

    @property
    def settled(self) -> bool:
        return self._unindexed is None

    def settle(self) -> None:
        """Index the threads the last rebuild made, if not yet done: the next update that
        finds a change needs them (and does this itself), an unchanged one does not."""
        if self._unindexed is not None:
            unindexed, self._unindexed = self._unindexed, None
            self._add(*unindexed)

    def _add(
        self,
        threads: list[Thread],
        lone: list[MessageMeta],
        bases: Bases | None = None,
        keys: Mapping[int, Key] | None = None,
    ) -> None:
        """Index `threads` and `lone`; `keys`: the messages' key tuples, by id(message), to
        share (else each gets its own)."""
        # A follow-up repeats its thread's whole References chain: each thread's distinct
        # ids are taken once (set operations in C), not once per message naming them.
        of_key, of_id, of_subject = self._of_key, self._of_id, self._of_subject
        bases = Bases() if bases is None else bases  # a lone message's subject is its thread's
        for thread in threads:
            key = id(thread)
            self.threads[key] = thread
            messages = thread.messages
            of_key.update(zip(_where(messages, keys), repeat(thread)))
            for ident in _thread_ids(messages):
                if of_id.setdefault(ident, key) != key:
                    put(of_id, ident, key)
            for subject in _subjects(messages, bases):
                if of_subject.setdefault(subject, key) != key:
                    put(of_subject, subject, key)
        spots = list(_where(lone, keys))  # one tuple each, in both indexes
        for msg, where in zip(lone, spots, strict=True):
            put(self._lone, bases[msg.subject], where)
        self._lone_keys.update(spots)

    def _patch(self, changed: list[MessageMeta], gone: list[Key], counterpart: Counterpart) -> bool:
        """Rebuild only the threads the changed and the gone messages touch; False when
        that could give another result than a full rebuild (then nothing was modified).

        A gone message can split its thread, or reshape the threads sharing an id with
        it: those are all in `touched`, rebuilt from what remains of them. Outside them
        the fallback's choices stand: a lone message outside chose no thread inside (else
        it would be inside), and the gone message only takes candidates away. Where the
        subject fallback could join a rebuilt thread with one outside, that one is
        rebuilt with them, until none could (core.reach)."""
        rebuilt = self._rebuilt(changed, gone, counterpart)
        if rebuilt is None:
            return False
        touched, old, threads, lone = rebuilt
        for key, thread in touched.items():
            self._forget(key, thread)
        for msg in old:
            if _key(msg) in self._lone_keys:
                take(self._lone, base_subject(msg.subject), _key(msg))
        self._lone_keys.difference_update(_key(m) for m in old)
        for where in gone:
            self._objects.discard(id(self.messages.pop(where)))
            del self._of_key[where]
        for msg in changed:
            self._store(msg)
        self._add(threads, lone)
        return True

    def _rebuilt(
        self, changed: list[MessageMeta], gone: list[Key], counterpart: Counterpart
    ) -> tuple[dict[int, Thread], list[MessageMeta], list[Thread], list[MessageMeta]] | None:
        """The touched threads, their messages, and the threads and lone messages built
        again from them, widened to what the subject fallback could reach; None when that
        takes more than _WIDENINGS widenings."""
        also: set[int] = set()
        left = set(gone)
        for _ in range(_WIDENINGS + 1):
            touched = self._touched(changed, gone, also)
            old = [m for t in touched.values() for m in t.messages]
            subset = {_key(m): m for m in old if _key(m) not in left}
            subset.update((_key(m), m) for m in changed)
            lone: list[MessageMeta] = []
            threads = build_threads(subset.values(), counterpart, lone)
            inside = subset.keys() | {_key(m) for m in old}
            reach = self._reach(threads, lone, touched, inside, counterpart)
            if not reach:
                return touched, old, threads, lone
            also |= reach
        return None

    def _reach(
        self,
        threads: list[Thread],
        lone: list[MessageMeta],
        touched: dict[int, Thread],
        inside: Collection[Key],
        counterpart: Counterpart,
    ) -> set[int]:
        """The threads outside `touched` that the subject fallback could join with one of
        `threads` (rebuilt from the touched ones), either way (core.reach): those a lone
        message of theirs could join, and those of lone messages that could join them."""
        found: set[int] = set()
        for msg in lone:
            for key in held(self._of_subject, base_subject(msg.subject)):
                if key not in touched and meets(
                    counterpart.roles(msg), (self.threads[key],), counterpart
                ):
                    found.add(key)
        for thread in threads:
            for subject in _subjects(thread.messages):
                for where in held(self._lone, subject):
                    if where in inside:
                        continue  # threaded with the rest by build_threads itself
                    if meets(counterpart.roles(self.messages[where]), (thread,), counterpart):
                        found.add(id(self._of_key[where]))
        return found

    def _forget(self, key: int, thread: Thread) -> None:
        del self.threads[key]
        for ident in _thread_ids(thread.messages):
            take(self._of_id, ident, key)
        for subject in _subjects(thread.messages):
            take(self._of_subject, subject, key)

    def _touched(
        self, changed: list[MessageMeta], gone: list[Key], also: Collection[int] = ()
    ) -> dict[int, Thread]:
        """The threads sharing an id with the changed messages, the threads that held the
        changed or gone ones, `also`, and the threads sharing an id with those, and so on:
        RFC 5256's graph is built in date order, so a thread's shape can depend on every
        message that names one of its ids, not only on its own messages."""
        touched: dict[int, Thread] = {}
        ids = [i for m in changed for i in linked_ids(m)]
        held_by = [self._of_key.get(where) for where in [*map(_key, changed), *gone]]
        for replaced in [*held_by, *(self.threads[key] for key in also)]:
            if replaced is not None:
                touched[id(replaced)] = replaced
                ids.extend(_thread_ids(replaced.messages))
        seen: set[str] = set()
        while ids:
            ident = ids.pop()
            if ident in seen:
                continue
            seen.add(ident)
            for key in held(self._of_id, ident):
                if key not in touched:
                    touched[key] = self.threads[key]
                    ids.extend(_thread_ids(touched[key].messages))
        return touched
