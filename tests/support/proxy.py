"""A fault-injecting TCP proxy, one per member peer URL, for multi-member robustness runs.

netem and iptables are not available on these machines, so peers reach each other through
these proxies (a member advertises the proxy's port as its peer URL) and the faults happen here.
Bytes pass through untouched, so peer mutual TLS stays end to end. Faults, per direction or both:

- ``cut()``: a partition — every open connection is closed and new ones are closed at accept;
- ``cut_from(sources)``: the same for connections from those sources only (``identify`` names the
  source of a connection from its client port: with one proxy in front of each member, cutting
  the others on X's proxy and X on every other proxy partitions X both ways);
- ``blackhole()``: connections stay open but nothing gets through (a silent network);
- ``delay(seconds, jitter)``: every chunk is forwarded that much later, order kept;
- ``drop(p)``: each chunk resets its connection with probability p (TCP cannot lose bytes
  inside a stream, so a lossy link shows up to the peers as broken connections);
- ``heal()``: back to a clean pass-through.

Threads, not asyncio, so a test or a run can drive it from plain code; every socket and thread
is closed by ``close()``.
"""

from __future__ import annotations

import contextlib
import queue
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_CHUNK = 64 * 1024
BOTH, FORWARD, BACKWARD = "both", "forward", "backward"  # forward: client -> target


@dataclass
class Faults:
    """What one direction suffers now (read at every chunk, so changes apply at once)."""

    blackhole: bool = False
    delay: float = 0.0
    jitter: float = 0.0
    drop: float = 0.0


class FaultProxy:
    """Listen on ``listen`` and forward each connection to ``target``, with injectable faults."""

    def __init__(self, target: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0),
                 seed: int | None = None, identify: Callable[[int, int], str | None] | None = None) -> None:
        self.target = target
        self.identify = identify  # (client port, our port) -> source name, or None if unknown
        self.refused: set[str] = set()  # sources cut off by cut_from
        self._sock = socket.create_server(listen, reuse_port=False)
        self._sock.settimeout(0.2)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self.faults = {FORWARD: Faults(), BACKWARD: Faults()}
        self.cut_off = False
        self._rng = random.Random(seed)
        self._conns: set[socket.socket] = set()
        # each connection's client port and its source, if known yet (asked again at cut_from if not)
        self._sources: dict[tuple[socket.socket, socket.socket], tuple[int, str | None]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept_loop, name=f"proxy-{self.address[1]}", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.address[1]

    # ---- faults -------------------------------------------------------------------------------------
    def _dirs(self, direction: str) -> list[Faults]:
        return list(self.faults.values()) if direction == BOTH else [self.faults[direction]]

    def cut(self) -> None:
        """Partition: close every connection now and every new one at accept, until ``heal``."""
        self.cut_off = True
        self._close_conns()

    def cut_from(self, sources: set[str]) -> None:
        """Partition from ``sources`` only: close their connections now and refuse new ones, until ``heal``."""
        self.refused |= sources
        with self._lock:
            known = list(self._sources.items())
        pairs = []
        for pair, (port, src) in known:
            if src is None and self.identify is not None:
                src = self.identify(port, self.port)
                with self._lock:
                    if pair in self._sources:
                        self._sources[pair] = (port, src)
            if src in sources:
                pairs.append(pair)
        for pair in pairs:
            self._close_pair(pair)

    def blackhole(self, direction: str = BOTH) -> None:
        for f in self._dirs(direction):
            f.blackhole = True

    def delay(self, seconds: float, jitter: float = 0.0, direction: str = BOTH) -> None:
        for f in self._dirs(direction):
            f.delay, f.jitter = seconds, jitter

    def drop(self, probability: float, direction: str = BOTH) -> None:
        for f in self._dirs(direction):
            f.drop = probability

    def heal(self) -> None:
        self.cut_off = False
        self.refused = set()
        self.faults = {FORWARD: Faults(), BACKWARD: Faults()}

    # ---- plumbing -----------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, peer = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            source = self.identify(peer[1], self.port) if self.identify else None
            if self.cut_off or source in self.refused:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, upstream)
            with self._lock:
                self._conns.update(pair)
                self._sources[pair] = (peer[1], source)
            self._pump(client, upstream, FORWARD, pair)
            self._pump(upstream, client, BACKWARD, pair)

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str,
              pair: tuple[socket.socket, socket.socket]) -> None:
        """Reader thread: receive, apply faults, queue with a due time; writer thread: send when due."""
        q: queue.Queue[tuple[float, bytes] | None] = queue.Queue()

        def read() -> None:
            try:
                while True:
                    data = src.recv(_CHUNK)
                    if not data:
                        break
                    f = self.faults[direction]
                    if f.drop and self._rng.random() < f.drop:
                        break  # reset the connection
                    if f.blackhole:
                        continue
                    q.put((time.monotonic() + f.delay + self._rng.uniform(0, f.jitter), data))
            except OSError:
                pass
            q.put(None)

        def write() -> None:
            try:
                while (item := q.get()) is not None:
                    wait = item[0] - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    dst.sendall(item[1])
            except OSError:
                pass
            self._close_pair(pair)

        for fn, what in ((read, "read"), (write, "write")):
            threading.Thread(target=fn, name=f"proxy-{self.port}-{direction}-{what}", daemon=True).start()

    def _close_pair(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            self._conns.difference_update(pair)
            self._sources.pop(pair, None)
        for s in pair:
            _shut(s)

    def _close_conns(self) -> None:
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
            self._sources.clear()
        for s in conns:
            _shut(s)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._conns) // 2

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        self._close_conns()
        self._thread.join(2)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shut(s: socket.socket) -> None:
    """Close now, waking a thread blocked in recv on it (close alone may not)."""
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()
