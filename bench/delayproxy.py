"""A link with a round-trip time and a bandwidth, between a client and a loopback server.

    proxy = DelayProxy(target_port, rtt=0.1, mbit=100)
    proxy.start()          # an asyncio loop in a thread of its own; proxy.port to connect to

Each direction holds every chunk for rtt/2 after it arrived (chunks stay pipelined: a
delay, not a stop-and-wait) and paces the bytes at the bandwidth, as a real link does.
It also counts what a measure asks of the link: connections and the round trips a
client waited on (a server chunk that follows a client chunk), for the idle poll's
"≤ 3 round trips" figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class LinkCounts:
    connections: int = 0
    round_trips: int = 0  # turns of the conversation: client spoke, then the server
    open_now: int = 0
    open_peak: int = 0


class DelayProxy:
    def __init__(self, target_port: int, rtt: float, mbit: float = 0.0) -> None:
        self.target_port = target_port
        self.half = rtt / 2
        self.bytes_per_s = mbit * 1e6 / 8 if mbit else 0.0
        # When the link has sent what came before, each way: one link for every connection
        # (a second connection shares the bandwidth, as on a real line; it had its own).
        self.free_at = {True: 0.0, False: 0.0}
        self.counts = LinkCounts()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def reset(self) -> LinkCounts:
        counts, self.counts = self.counts, LinkCounts(open_now=self.counts.open_now)
        return counts

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        counts = self.counts
        counts.connections += 1
        counts.open_now += 1
        counts.open_peak = max(counts.open_peak, counts.open_now)
        turn = {"client": False}
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, turn, True),
                self._pipe(up_reader, writer, turn, False),
            )
        finally:
            self.counts.open_now -= 1

    async def _pipe(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        turn: dict[str, bool],
        from_client: bool,
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.ensure_future(self._deliver(queue, dst, from_client))
        try:
            while chunk := await src.read(65536):
                if from_client:
                    turn["client"] = True
                elif turn["client"]:
                    turn["client"] = False
                    self.counts.round_trips += 1
                queue.put_nowait((time.monotonic() + self.half, chunk))
        except OSError:
            pass
        finally:
            queue.put_nowait((0.0, b""))
            with contextlib.suppress(Exception):
                await sender

    async def _deliver(
        self, queue: asyncio.Queue[tuple[float, bytes]], dst: asyncio.StreamWriter, up: bool
    ) -> None:
        free_at = self.free_at
        try:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    break
                now = time.monotonic()
                if self.bytes_per_s:
                    free_at[up] = max(free_at[up], now) + len(chunk) / self.bytes_per_s
                    due = max(due, free_at[up])
                if due > now:
                    await asyncio.sleep(due - now)
                dst.write(chunk)
                await dst.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.close()


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="through a delay proxy")
    parser.add_argument("--mbit", type=float, default=0.0, help="the link's bandwidth (0: ∞)")


@contextlib.contextmanager
def link(args: argparse.Namespace, port: int) -> Iterator[tuple[int, DelayProxy | None]]:
    """The port to measure through: the server's, or a DelayProxy's when the options ask."""
    if not (args.rtt_ms or args.mbit):
        yield port, None
        return
    proxy = DelayProxy(port, args.rtt_ms / 1000, args.mbit)
    proxy.start()
    print(f"through a link of {args.rtt_ms:g} ms RTT, {args.mbit or '∞'} Mbit/s", flush=True)
    try:
        yield proxy.port, proxy
    finally:
        proxy.stop()
