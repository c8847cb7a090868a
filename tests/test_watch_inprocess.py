"""Watch internals that no client can see, on an in-process pyetcd over real TLS sockets.

The member runs in a background thread with its own event loop; the test talks to it with a real
gRPC client and reads the watch hub's counters: a stalled client's stream stays bounded while its
watcher is parked as a victim, and every watcher is freed when its stream or connection goes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import grpc
import pytest

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from pyetcd.rpc.grpcserver import build_server
from pyetcd.server.config import ServerConfig, TLSInfo
from pyetcd.server.etcd_server import EtcdServer
from pyetcd.watch import WatchHub
from support import CertPaths, free_port
from support.member import grpc_channel_for


class InProcess:
    """An EtcdServer plus its gRPC server, run on a private event loop thread."""

    def __init__(self, data_dir: Path, certs: CertPaths) -> None:
        port = free_port()
        self.target = f"127.0.0.1:{port}"
        self.tls = certs.client_tls()
        url = f"https://{self.target}"
        self.cfg = ServerConfig(name="inproc", data_dir=data_dir, listen_client_urls=[url], advertise_client_urls=[url],
                                client_tls=TLSInfo(str(certs.server), str(certs.server_key), str(certs.ca), True))
        self.loop = asyncio.new_event_loop()
        self._ready: SimpleQueue[Any] = SimpleQueue()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)
        self.thread.start()
        err = self._ready.get(timeout=30)
        if err is not None:
            raise err
        self.hub: WatchHub = self.server.watch_hub

    async def _main(self) -> None:
        try:
            self.server = EtcdServer(self.cfg)
            grpc_server = build_server(self.server)
            await grpc_server.start()
            await self.server.start()
            self._stop = asyncio.Event()
        except BaseException as e:
            self._ready.put(e)
            raise
        self._ready.put(None)
        await self._stop.wait()
        await grpc_server.stop(grace=0.5)
        await self.hub.close()
        await self.server.stop()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the server's loop (the hub is not thread-safe) and return its result."""
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def channel(self) -> grpc.Channel:
        return grpc_channel_for(self.target, self.tls)

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)


@pytest.fixture
def member(tmp_path: Path, certs: CertPaths) -> Iterator[InProcess]:
    m = InProcess(tmp_path / "data", certs)
    yield m
    m.close()


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def _creates(n: int, gate: threading.Event | None = None) -> Iterator[rpc_pb2.WatchRequest]:
    for i in range(n):
        yield rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"w%d" % i))
    if gate is not None:
        gate.wait()


def test_watchers_freed_when_stream_or_connection_goes(member: InProcess) -> None:
    gate = threading.Event()
    ch = member.channel()
    call = rpc_pb2_grpc.WatchStub(ch).Watch(_creates(500, gate))
    created = sum(1 for _, r in zip(range(500), call, strict=False) if r.created)
    assert created == 500 and member.call(lambda: member.hub.watcher_count) == 500
    call.cancel()  # the stream goes
    assert _wait(lambda: member.call(lambda: member.hub.watcher_count) == 0)
    gate.set()

    ch2 = member.channel()
    gate2 = threading.Event()
    call2 = rpc_pb2_grpc.WatchStub(ch2).Watch(_creates(300, gate2))
    assert sum(1 for _, r in zip(range(300), call2, strict=False) if r.created) == 300
    ch2.close()  # the whole connection goes
    assert _wait(lambda: member.call(lambda: member.hub.watcher_count) == 0)
    gate2.set()
    ch.close()


def test_stalled_client_is_parked_bounded_and_caught_up(member: InProcess) -> None:
    value = b"v" * 8192  # 16 MiB in all: far past the stream's 4 MiB bound and gRPC's windows
    n = 2000
    with member.channel() as ch, member.channel() as slow_ch:
        gate = threading.Event()
        slow = rpc_pb2_grpc.WatchStub(slow_ch).Watch(_prefix_watch(b"s", gate))
        assert next(slow).created  # and then it reads nothing until the puts are done
        kv = rpc_pb2_grpc.KVStub(ch)
        max_queued, max_bytes = 0, 0
        t0 = time.monotonic()
        for i in range(n):
            kv.Put(rpc_pb2.PutRequest(key=b"s%d" % (i % 50), value=value))
            if i % 100 == 0:
                queued, queued_bytes = member.call(lambda: max(s.queued for s in member.hub.streams))
                max_queued, max_bytes = max(max_queued, queued), max(max_bytes, queued_bytes)
        elapsed = time.monotonic() - t0
        assert member.call(lambda: member.hub.victims) == 1  # parked, holding no events
        assert max_queued <= 1024 and max_bytes <= (4 << 20) + len(value)  # the stream's bounds
        # writes did not wait for the stalled client (2000 puts; generous bound for a busy machine)
        assert elapsed < 60
        revs = [e.kv.mod_revision for r in _take(slow, n) for e in r.events]
        assert revs == list(range(2, n + 2))  # every event once, in order, after resuming from history
        assert member.call(lambda: member.hub.victims) == 0
        slow.cancel()
        gate.set()


def _prefix_watch(prefix: bytes, gate: threading.Event) -> Iterator[rpc_pb2.WatchRequest]:
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    yield rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=prefix, range_end=end))
    gate.wait()


def _take(call: Any, n_events: int) -> list[rpc_pb2.WatchResponse]:
    out, got = [], 0
    for r in call:
        out.append(r)
        got += len(r.events)
        if got >= n_events:
            break
    return out


def test_restore_rechecks_history_without_duplicates(member: InProcess) -> None:
    """After the key space is swapped (as a leader's snapshot would), synced watchers resume
    after the last revision they had: nothing twice, nothing lost."""
    with member.channel() as ch:
        gate = threading.Event()
        call = rpc_pb2_grpc.WatchStub(ch).Watch(_prefix_watch(b"r", gate))
        assert next(call).created
        kv = rpc_pb2_grpc.KVStub(ch)
        for i in range(5):
            kv.Put(rpc_pb2.PutRequest(key=b"r%d" % i, value=b"a"))
        member.call(lambda: member.hub.restore(member.hub.kv.current_rev))
        for i in range(5):
            kv.Put(rpc_pb2.PutRequest(key=b"r%d" % i, value=b"b"))
        revs = [e.kv.mod_revision for r in _take(call, 10) for e in r.events]
        assert revs == list(range(2, 12))
        assert _wait(lambda: member.call(lambda: len(member.hub.synced)) == 1)
        call.cancel()
        gate.set()
