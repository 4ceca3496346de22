"""What a lean service gives back once a read's report is kept (service.poller): the
parsers' caches, and the memory its objects held, to the system.

At 100,000 messages a service held 204 MB between polls (issue 21, target 80 MB). Dropping
its parsed messages, threads and verdicts alone left 213 MB: CPython's allocator keeps an
arena (1 MB) while any object in it lives, and the parsers' caches (addresses, subjects:
21 MB) lived in most of them. With the caches cleared 131 MB were left, and glibc's
`malloc_trim`, which hands free pages inside the heap back, brought it to 82 MB
(bench/README.md). The caches fill again at the next read.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from collections.abc import Iterator
from typing import Any

from inboxwatch.config import Settings
from inboxwatch.core.model import Report
from inboxwatch.core.ports import StateStore
from inboxwatch.service import keptreport
from inboxwatch.service.sync import MemoryCache


def keep(store: StateStore, settings: Settings, memory: MemoryCache, report: Report) -> None:
    """`report` (the last read's, clean) kept, as `run --once` keeps its own, after what
    the folders `memory` holds name: the polls after it are brought forward from it by
    what changed (service.splicing). Named here, once the poll's report is out: naming
    100,000 messages takes ~1.5 s, which the first poll would otherwise wait for."""
    for account, folder, messages in memory.folders():
        if not store.named(account, folder):
            store.name_folder(account, folder, messages.values())
    keptreport.keep(store, settings, report)


def shed() -> None:
    """Clear every cache of inboxwatch's modules, collect, and trim the C heap."""
    for cache in _caches():
        cache.cache_clear()
    gc.collect()
    _trim()


def _caches() -> Iterator[Any]:
    """The functools caches in inboxwatch's modules (each is a function's own)."""
    for name, module in list(sys.modules.items()):
        if name == "inboxwatch" or name.startswith("inboxwatch."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)) and hasattr(value, "cache_info"):
                    yield value


def _trim() -> None:
    """glibc's malloc_trim(0) where there is one (musl and macOS have none: skipped)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)
