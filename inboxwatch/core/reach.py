"""How far the subject fallback (core.threads) reaches: for core.incremental, which
rebuilds only the threads a change touched and must know when the fallback could join
one of them with a thread outside them (then only a full rebuild is sure to be right).

A lone message (one that began a thread without linking headers) joins another thread
only where that thread has the lone message's base subject and one of its messages is
between the same two parties, either way round (`threads._subject_fallback`, which asks
it of each linked group; a thread is one or more of those, so asking it of threads is
as cautious or more). Most new mail shares its subject with some older thread ("Invoice",
"Question"); far less of it shares the parties too.

Also the small multi-map the memo keeps its indexes in: a name to one value, or to a
set of them where several share it (a set per name would cost ~200 bytes each).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from inboxwatch.core.model import Thread
from inboxwatch.core.threads import Counterpart, Roles

V = TypeVar("V", int, tuple[str, int])


def put(index: dict[str, V | set[V]], name: str, value: V) -> None:
    held = index.get(name)
    if held is None or held == value:
        index[name] = value
    elif isinstance(held, set):
        held.add(value)
    else:
        index[name] = {held, value}


def take(index: dict[str, V | set[V]], name: str, value: V) -> None:
    held = index.get(name)
    if isinstance(held, set):
        held.discard(value)
        if not held:
            del index[name]
    elif held == value:
        del index[name]


def held(index: dict[str, V | set[V]], name: str) -> Iterable[V]:
    found = index.get(name)
    if found is None:
        return ()
    return found if isinstance(found, set) else (found,)


def meets(roles: Roles, threads: Iterable[Thread], counterpart: Counterpart) -> bool:
    """Whether a lone message with these roles and some message of `threads` are between
    the same two parties, either way round: its recipients (if it is the owner's) the
    other's sender or Reply-To, or its sender (if not) the owner's recipients."""
    mine, theirs = set(roles[0]), set(roles[1])
    for thread in threads:
        for msg in thread.messages:
            their_mine, their_theirs = counterpart.roles(msg)
            if not mine.isdisjoint(their_theirs) or not theirs.isdisjoint(their_mine):
                return True
    return False
