"""Helpers for multi-member tests: who leads, waiting for convergence, and a writer that keeps
count of every write a member acknowledged (the ones that must survive any fault)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support.clients import grpc_channel
from support.member import Member
from support.tls import CertPaths


def status(m: Member, timeout: float = 1.0) -> rpc_pb2.StatusResponse | None:
    """The member's Maintenance.Status, or None if it does not answer."""
    if not m.running:
        return None
    try:
        with grpc_channel(m) as ch:
            return rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=timeout)
    except grpc.RpcError:
        return None


def leader_of(members: list[Member]) -> Member | None:
    """The member that says it leads, agreed by every member that answers (None: no agreement)."""
    answers = [(m, status(m)) for m in members if m.running]
    seen = {s.leader for _, s in answers if s is not None}
    if len(seen) != 1 or 0 in seen:
        return None
    lead = seen.pop()
    return next((m for m, s in answers if s is not None and s.header.member_id == lead), None)


def wait_leader(members: list[Member], timeout: float = 10.0, not_: Member | None = None) -> tuple[Member, float]:
    """Wait until the running members agree on a leader (other than ``not_``); returns it and the wait."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        lead = leader_of(members)
        if lead is not None and lead is not not_:
            return lead, time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"no leader among {[m.name for m in members if m.running]} after {timeout}s")


def serializable_get(m: Member, key: bytes, range_end: bytes = b"", timeout: float = 2.0) -> rpc_pb2.RangeResponse:
    with grpc_channel(m) as ch:
        return rpc_pb2_grpc.KVStub(ch).Range(
            rpc_pb2.RangeRequest(key=key, range_end=range_end, serializable=True), timeout=timeout)


def wait_revision(members: list[Member], revision: int, timeout: float = 30.0) -> None:
    """Wait until every member serves at least ``revision`` (serializable reads: its own state)."""
    deadline = time.monotonic() + timeout
    for m in members:
        while True:
            with contextlib.suppress(grpc.RpcError):
                if serializable_get(m, b"\0").header.revision >= revision:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"{m.name} did not reach revision {revision} in {timeout}s")
            time.sleep(0.1)


@dataclass
class Writer:
    """Threads putting distinct keys through every member in turn; ``acked`` holds each write a
    member acknowledged (key -> revision). Errors and timeouts are outcomes unknown, not counted."""

    members: list[Member]
    prefix: bytes = b"w/"
    threads: int = 4
    acked: dict[bytes, int] = field(default_factory=dict)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Writer:
        for t in range(self.threads):
            th = threading.Thread(target=self._run, args=(t,), daemon=True)
            th.start()
            self._workers.append(th)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for th in self._workers:
            th.join(30)

    def _run(self, t: int) -> None:
        n = 0
        channels: dict[str, grpc.Channel] = {}
        try:
            while not self._stop.is_set():
                m = self.members[(t + n) % len(self.members)]
                n += 1
                if not m.running:
                    continue
                key = self.prefix + f"{t}-{n:06d}".encode()
                ch = channels.get(m.name) or channels.setdefault(m.name, grpc_channel(m))
                try:
                    resp = rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=key, value=key), timeout=3.0)
                except grpc.RpcError:
                    with self._lock:
                        self.errors += 1
                    time.sleep(0.05)
                    continue
                with self._lock:
                    self.acked[key] = resp.header.revision
        finally:
            for ch in channels.values():
                ch.close()

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.acked)} of {count} writes acknowledged in {timeout}s")
            time.sleep(0.05)


def missing_writes(m: Member, acked: dict[bytes, int], prefix: bytes) -> list[bytes]:
    """Acknowledged keys that member ``m`` does not have with their acknowledged revision."""
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    resp = serializable_get(m, prefix, end, timeout=10.0)
    have = {kv.key: kv.mod_revision for kv in resp.kvs}
    return sorted(k for k, rev in acked.items() if have.get(k) != rev)


def peer_call(target: Member, call: Callable[[Any], Awaitable[Any]], certs: CertPaths | None = None) -> Any:
    """Run ``call(PeerStub)`` against ``target``'s peer URL presenting a peer certificate from
    ``certs`` (default the cluster's; the cluster's CA is always the one trusted): what another
    member would send, or a forged one."""
    from pyetcd.api import peer_pb2_grpc
    from pyetcd.tls import TLSInfo
    from pyetcd.transport.transport import open_channel

    c = certs or target.certs
    tls = TLSInfo(str(c.peer), str(c.peer_key), str(target.certs.ca))

    async def run() -> Any:
        ch = await open_channel(target.peer_url, tls)
        try:
            return await call(peer_pb2_grpc.PeerStub(ch))
        finally:
            await ch.close(None)

    return asyncio.run(run())
