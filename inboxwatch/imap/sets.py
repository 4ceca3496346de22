"""UID sets both ways (RFC 3501 9, sequence-set), and UIDs in batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def uid_set(uids: Sequence[int]) -> str:
    """`1:5,7,9:12`: sorted UIDs as ranges, for short command lines (RFC 3501 sequence-set)."""
    parts: list[str] = []
    ordered = sorted(uids)
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid != prev + 1:
            parts.append(f"{start}:{prev}" if prev > start else str(start))
            start = uid
        prev = uid
    parts.append(f"{start}:{prev}" if prev > start else str(start))
    return ",".join(parts)


def uids_in(text: bytes) -> list[int]:
    """`uid_set` read back: the UIDs of a sequence-set of numbers, sorted (a server may
    write a range high to low: `5:1`, RFC 3501 9)."""
    found: set[int] = set()
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        first, last = int(low), int(high or low)
        found.update(range(min(first, last), max(first, last) + 1))
    return sorted(found)


def batches(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
