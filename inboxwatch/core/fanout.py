"""Work on many accounts side by side, `max_parallel` at a time.

Threads, not processes: an account's work mostly waits on its server, and the GIL is
let go meanwhile (a big folder's parsing has its own process: imap.worker).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def side_by_side(
    parallel: int, work: Callable[[T], R], items: Iterable[T], name: str = "account"
) -> list[R]:
    """`work` on every item, `parallel` at a time (in this thread when 1 or a single
    item); the results in the items' order. The first error is raised once all ended."""
    todo = list(items)
    if parallel <= 1 or len(todo) <= 1:
        return [work(item) for item in todo]
    with ThreadPoolExecutor(min(parallel, len(todo)), name) as pool:
        return list(pool.map(work, todo))
