"""The report a `run --once` kept (store/lastreport.py), as the next run reads it: its
folders at once, to see whether it applies, and its body decoded in a thread while the
poll waits on the server's first answers (the quick check's `EXAMINE`s, the changed
folder's read). At 100,000 messages the body is 22 MB and 0.28 s to decode; the quick
check waits 0.1-0.15 s on Dovecot, and the decode is needed after it whether the report
is carried (nothing changed) or brought forward (core.splice).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from inboxwatch.config import Settings
from inboxwatch.core.model import Report
from inboxwatch.core.ports import StateStore
from inboxwatch.store import lastreport

log = logging.getLogger(__name__)
A = TypeVar("A")
T = TypeVar("T")


def readable(read: Callable[[A], T], kept: A) -> T | None:
    """`read` (lastreport's folders or decode) of what was kept of the report; None, and
    a line, when it does not read (the poll reads the cache instead)."""
    try:
        return read(kept)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        log.info("stored report unreadable (%s); reading the cache", exc)
        return None


class KeptReport:
    """A kept report made with these settings: its folders (by account), and its body."""

    def __init__(self, store: StateStore, key: str, text: str, folders: dict[str, tuple[str, ...]]):
        self.store, self.key, self.text, self.folders = store, key, text, folders
        self._thread: threading.Thread | None = None
        self._report: Report | None = None
        self._failed: Exception | None = None  # raised where the report is asked for

    @classmethod
    def of(cls, store: StateStore, settings: Settings) -> KeptReport | None:
        """The kept report, if it was made with `settings` and its folders read."""
        key = lastreport.fingerprint(settings)
        text = store.kept_folders(key)
        folders = None if text is None else readable(lastreport.folders, text)
        return None if text is None or folders is None else cls(store, key, text, folders)

    def read_ahead(self) -> None:
        """Read the body now (the store is not shared with the thread) and decode it in a
        thread; the collector is paused for the whole poll (Poller.poll)."""
        if self._thread is None:
            body = self.store.kept_report(self.key, self.text)
            self._thread = threading.Thread(target=self._decode, args=(body,), daemon=True)
            self._thread.start()

    def _decode(self, body: bytes | None) -> None:
        try:
            self._report = None if body is None else readable(lastreport.decode, body)
        except Exception as exc:  # not the thread's to report: report() raises it
            self._failed = exc

    def report(self) -> Report | None:
        """The body decoded (read now if it was not read ahead); None when it does not."""
        self.read_ahead()
        if self._thread is not None:
            self._thread.join()
        if self._failed is not None:
            raise self._failed
        return self._report
