"""A fault-injecting TCP proxy between the client under test and a real server.

It records every line the client sends, so a test can prove which IMAP
commands were (and were not) issued: Dovecot answers a STORE on a read-only
mailbox with "OK Store ignored", so only the client's own words prove read-only.
Faults: cut the connection after N bytes from the server or when the client
sends a given command, stall (hold it open and silent), delay every chunk.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Self


class LoopbackServer:
    """A listener on a free loopback port, accepting in a thread until the `with` ends;
    each connection goes to `handle` in a thread of its own."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = int(self.listener.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError


class RecordingProxy(LoopbackServer):
    def __init__(
        self,
        target_port: int,
        target_host: str = "127.0.0.1",
        delay: float = 0.0,
        cut_after: int | None = None,
        cut_on: bytes | None = None,
        stall_on: bytes | None = None,
        faulty_connections: int = 1_000_000,
        mangle_after: int | None = None,
    ) -> None:
        self.target = (target_host, target_port)
        self.delay = delay  # seconds before forwarding each server->client chunk
        self.cut_after = cut_after  # close after this many server->client bytes
        self.cut_on = cut_on  # close when the client sends a line containing this
        self.stall_on = stall_on  # go silent (but stay open) when the client sends this
        self.faulty_connections = faulty_connections  # later connections pass through
        self.mangle_after = mangle_after  # invert every server->client byte after this many
        self.client_bytes = bytearray()
        self.client_chunks: list[bytes] = []  # as each arrived: what the client wrote at once
        # Both directions in the order they passed: a client chunk when it arrived, a
        # server chunk just before it was passed on (so the client's answer comes after).
        self.events: list[tuple[str, bytes]] = []
        self.server_bytes = 0  # how much the server sent
        self.connections = 0
        self._lock = threading.Lock()
        super().__init__()

    def commands(self) -> list[str]:
        """The command names the client sent (`UID FETCH` counts as `UID FETCH`)."""
        with self._lock:
            text = bytes(self.client_bytes).decode("utf-8", "replace")
        names = []
        for line in text.split("\r\n"):
            parts = line.split(" ")
            if len(parts) < 2 or not parts[0] or parts[0].startswith("{"):
                continue
            name = parts[1].upper()
            if name == "UID" and len(parts) > 2:
                name = f"UID {parts[2].upper()}"
            names.append(name)
        return names

    def handle(self, client: socket.socket) -> None:
        self.connections += 1
        faulty = self.connections <= self.faulty_connections
        upstream = socket.create_connection(self.target)
        state = {"stalled": False, "sent": 0, "seen": 0}
        for src, dst, record in ((client, upstream, True), (upstream, client, False)):
            threading.Thread(
                target=self._pipe, args=(src, dst, record, faulty, state), daemon=True
            ).start()

    def _pipe(
        self, src: socket.socket, dst: socket.socket, record: bool, faulty: bool, state: dict
    ) -> None:
        try:
            while chunk := src.recv(65536):
                if record:
                    with self._lock:
                        self.client_bytes.extend(chunk)
                        self.client_chunks.append(chunk)
                        self.events.append(("client", chunk))
                    if faulty and self.cut_on and self.cut_on in chunk:
                        break
                    if faulty and self.stall_on and self.stall_on in chunk:
                        state["stalled"] = True
                else:
                    self.server_bytes += len(chunk)
                    if self.delay:
                        time.sleep(self.delay)
                    with self._lock:
                        self.events.append(("server", chunk))
                if state["stalled"]:
                    continue  # swallow: the peer waits for an answer that never comes
                if not record and faulty and self.mangle_after is not None:
                    keep = max(self.mangle_after - state["seen"], 0)
                    state["seen"] += len(chunk)
                    chunk = chunk[:keep] + bytes(b ^ 0xFF for b in chunk[keep:])
                if not record and faulty and self.cut_after is not None:
                    room = self.cut_after - state["sent"]
                    if room <= len(chunk):
                        dst.sendall(chunk[: max(room, 0)])
                        break
                    state["sent"] += len(chunk)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
