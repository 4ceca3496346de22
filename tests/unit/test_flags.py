"""imap.flags: which cached messages' flags changed, in as few commands as the server allows.
The CHANGEDSINCE path runs against Dovecot in test_service.py; the path without CONDSTORE
(Microsoft 365 has none) is checked here with a client that records its calls."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from inboxwatch.imap.flags import BATCH, changed_flags


class _Watch:
    @contextlib.contextmanager
    def deadline(self, what: str) -> Iterator[None]:
        yield


class _Client:
    """Answers FLAGS for every UID asked, plus one it was not asked about (an unsolicited
    FETCH), and records the commands."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def _answer(self, uids: Sequence[int]) -> dict[int, dict[bytes, Any]]:
        found: dict[int, dict[bytes, Any]] = {u: {b"FLAGS": (b"\\Seen",)} for u in uids}
        found[999_999] = {b"FLAGS": (b"\\Flagged",)}
        return found

    def fetch(self, uids: Sequence[int], data: Sequence[str]) -> dict[int, dict[bytes, Any]]:
        self.calls.append(("fetch", len(uids), list(data)))
        return self._answer(uids)

    def fetch_send(self, span: str, data: Sequence[str], modifiers: Sequence[str]) -> bytes:
        self.calls.append(("fetch_send", span, list(data), list(modifiers)))
        return b"A1"

    def fetch_answer(self, tag: bytes, uids: Sequence[int]) -> dict[int, dict[bytes, Any]]:
        self.calls.append(("fetch_answer", tag))
        return self._answer(uids[::2])  # the server says half of them changed


def test_without_condstore_every_cached_uid_is_asked_in_batches() -> None:
    client = _Client()
    uids = list(range(1, 2 * BATCH + 501))
    found = changed_flags(client, _Watch(), None, uids)  # type: ignore[arg-type]
    assert client.calls == [
        ("fetch", BATCH, ["FLAGS"]),
        ("fetch", BATCH, ["FLAGS"]),
        ("fetch", 500, ["FLAGS"]),
    ]
    assert sorted(found) == uids and found[1] == frozenset({"\\Seen"})


def test_with_condstore_one_fetch_changedsince_over_the_range() -> None:
    client = _Client()
    uids = [3, 7, 4000, 9000]  # scattered: still one short command
    found = changed_flags(client, _Watch(), 41, uids)  # type: ignore[arg-type]
    assert client.calls == [
        ("fetch_send", "3:9000", ["FLAGS"], ["CHANGEDSINCE 41"]),
        ("fetch_answer", b"A1"),
    ]
    assert sorted(found) == [3, 4000]  # what changed, and nothing it was not asked about


def test_nothing_cached_asks_nothing() -> None:
    client = _Client()
    assert changed_flags(client, _Watch(), 41, []) == {}  # type: ignore[arg-type]
    assert changed_flags(client, _Watch(), None, []) == {}  # type: ignore[arg-type]
    assert client.calls == []
