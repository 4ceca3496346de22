"""UID sets both ways (RFC 3501 9, sequence-set), UIDs in batches, and batches' FETCH
commands in waves sent at once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

# FETCH commands sent before the first is answered: at most this many bytes of them.
PIPELINED_BYTES = 16384


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


def fetch_waves(chunks: list[Sequence[int]], items: str) -> Iterator[list[tuple[bytes, int]]]:
    """The FETCH commands of `chunks` (with their sizes), grouped into waves sent at once.
    A wave's commands are short together (contiguous UIDs: `1:5000`): both sides writing
    at once can fill both socket buffers, so long ones (scattered UIDs) go one a wave."""
    wave: list[tuple[bytes, int]] = []
    for chunk in chunks:
        command = f"UID FETCH {uid_set(chunk)} ({items})".encode("ascii")
        if wave and sum(len(c) for c, _ in wave) + len(command) > PIPELINED_BYTES:
            yield wave
            wave = []
        wave.append((command, len(chunk)))
    if wave:
        yield wave
