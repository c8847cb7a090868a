"""Concurrent clients, a compactor and watchers against one or more members, every request recorded.

Threads with synchronous gRPC stubs over mutual TLS (one channel each, fast reconnects), so a
client blocks on a paused member as etcd's clients do. Keys come from a small key space so
requests contend; every put writes a value never written before (``c<client>-<n>``), which is
what lets the checker settle unknown outcomes. The clients' own leases live long (no expiry
inside a run) and end by revoke, which deletes their keys; short leases, which expire, are held
by ``leases.LeaseKeeper`` (fault ``lease-pause``) and clients attach keys to them too.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from robustness.history import History, WatchRecord, WatchResponse
from support.member import Member, grpc_channel_for

KEYS = [f"k/{i}" for i in range(8)]
PREFIXES = ["k/", "k/1", "k/"]
LEASE_TTL = 600
REQUEST_TIMEOUT = 1.0
# fast reconnects: a restarted member is reached again within ~100 ms, not grpc's default ~1-2 s
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                   ("grpc.max_reconnect_backoff_ms", 300)]


def prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def kv_tuple(kv: Any) -> tuple[str, str, int, int, int, int]:
    return (kv.key.decode(), kv.value.decode(), kv.create_revision, kv.mod_revision, kv.version, kv.lease)


# UNAVAILABLE before the request left: grpc fails fast on a channel with no connection
NOT_SENT = ("failed to connect to all addresses", "Connection refused")


def definite_error(e: grpc.RpcError) -> tuple[str, str] | None:
    """An error that proves the request had no effect, as the model names it; None: unknown outcome.

    ``("err", "not_sent")``: the channel had no connection, so the request never reached a member
    (``history.patch`` drops these)."""
    code, details = e.code(), (e.details() or "")
    if code == grpc.StatusCode.UNAVAILABLE and any(s in details for s in NOT_SENT):
        return ("err", "not_sent")
    if code == grpc.StatusCode.NOT_FOUND and "lease not found" in details:
        return ("err", "lease_not_found")
    if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
        return ("err", "compacted")
    if code == grpc.StatusCode.OUT_OF_RANGE and "future" in details:
        return ("err", "future")
    return None


class Endpoint:
    """Stubs on one channel to one member."""

    def __init__(self, member: Member) -> None:
        self.channel = grpc_channel_for(member.grpc_target, member.client_tls(), options=CHANNEL_OPTIONS)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.watch = rpc_pb2_grpc.WatchStub(self.channel)
        self.maint = rpc_pb2_grpc.MaintenanceStub(self.channel)

    def close(self) -> None:
        self.channel.close()


def _op_pb(op: tuple[Any, ...]) -> rpc_pb2.RequestOp:
    if op[0] == "put":
        return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=op[1].encode(), value=op[2].encode(), lease=op[3]))
    if op[0] == "delete":
        return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(
            key=op[1].encode(), range_end=(op[2] or "").encode()))
    return rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=op[1].encode(), range_end=(op[2] or "").encode()))


def execute(ep: Endpoint, req: tuple[Any, ...], timeout: float = REQUEST_TIMEOUT) -> tuple[Any, ...]:
    """Send one model request; the model's answer tuple. Raises grpc.RpcError."""
    kind = req[0]
    if kind == "get":
        r = ep.kv.Range(rpc_pb2.RangeRequest(key=req[1].encode(), range_end=(req[2] or "").encode(),
                                             serializable=req[3]), timeout=timeout)
        return ("ok", r.header.revision, tuple(kv_tuple(kv) for kv in r.kvs))
    if kind == "put":
        p = ep.kv.Put(rpc_pb2.PutRequest(key=req[1].encode(), value=req[2].encode(), lease=req[3]), timeout=timeout)
        return ("ok", p.header.revision)
    if kind == "delete":
        d = ep.kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=req[1].encode(), range_end=(req[2] or "").encode()),
                              timeout=timeout)
        return ("ok", d.header.revision, d.deleted)
    if kind == "txn":
        key, target, want = req[1]
        cmp = rpc_pb2.Compare(key=key.encode(), result=rpc_pb2.Compare.EQUAL)
        if target == "mod":
            cmp.target, cmp.mod_revision = rpc_pb2.Compare.MOD, want
        elif target == "version":
            cmp.target, cmp.version = rpc_pb2.Compare.VERSION, want
        else:
            cmp.target, cmp.value = rpc_pb2.Compare.VALUE, want.encode()
        t = ep.kv.Txn(rpc_pb2.TxnRequest(compare=[cmp], success=[_op_pb(o) for o in req[2]],
                                         failure=[_op_pb(o) for o in req[3]]), timeout=timeout)
        results: list[Any] = []
        for resp in t.responses:
            which = resp.WhichOneof("response")
            if which == "response_put":
                results.append(())
            elif which == "response_delete_range":
                results.append((resp.response_delete_range.deleted,))
            else:
                results.append(tuple(kv_tuple(kv) for kv in resp.response_range.kvs))
        return ("ok", t.header.revision, t.succeeded, tuple(results))
    if kind == "grant":  # ("grant", id[, ttl]): a short lease names its TTL
        ttl = req[2] if len(req) > 2 else LEASE_TTL
        g = ep.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(ID=req[1], TTL=ttl), timeout=timeout)
        return ("ok", g.header.revision)
    if kind == "ttl":  # etcd answers a lease it no longer has with TTL -1 and no granted TTL
        t = ep.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=req[1]), timeout=timeout)
        return ("ok", t.grantedTTL > 0)
    if kind == "revoke":
        v = ep.lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=req[1]), timeout=timeout)
        return ("ok", v.header.revision)
    if kind == "compact":
        c = ep.kv.Compact(rpc_pb2.CompactionRequest(revision=req[1]), timeout=timeout)
        return ("ok", c.header.revision)
    raise ValueError(f"unknown request {req!r}")


def record(h: History, ep: Endpoint, client: int, req: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Send and record one request; the answer, or None for an unknown outcome."""
    op = h.invoke(client, req)
    try:
        out: tuple[Any, ...] | None = execute(ep, req)
    except grpc.RpcError as e:
        out = definite_error(e)
    h.done(op, out)
    return out


@dataclass
class Shared:
    """What clients share: the lease ids in play and the highest revision anyone saw answered."""

    leases: list[int]
    latest_rev: int = 1
    short_leases: list[int] = field(default_factory=list)  # held by lease keepers; they may expire


class Client(threading.Thread):
    """One client: a seeded mix of gets, ranges, puts, deletes, CAS txns and lease calls."""

    def __init__(self, cid: int, h: History, member: Member, rng: random.Random, stop: threading.Event,
                 shared: Shared, lease_base: int) -> None:
        super().__init__(name=f"client-{cid}", daemon=True)
        self.cid, self.h, self.member, self.rng, self.stop_ev, self.shared = cid, h, member, rng, stop, shared
        self.n = 0
        self.next_lease = lease_base + cid * 1_000_000
        self.mods: dict[str, int] = {}  # last mod revision this client saw per key (for CAS)

    def value(self) -> str:
        self.n += 1
        return f"c{self.cid}-{self.n}"

    def pick(self) -> tuple[Any, ...]:
        r, key = self.rng.random(), self.rng.choice(KEYS)
        if r < 0.22:
            return ("get", key, None, False)
        if r < 0.27:
            return ("get", key, None, True)
        if r < 0.37:
            p = self.rng.choice(PREFIXES)
            return ("get", p, prefix_end(p), False)
        if r < 0.60:
            return ("put", key, self.value(), 0)
        if r < 0.67:
            # a short lease half the time when there are any (no draw when there are none: same seeds)
            short = self.shared.short_leases and self.rng.random() < 0.5
            pool = self.shared.short_leases if short else self.shared.leases
            return ("put", key, self.value(), self.rng.choice(pool) if pool else 0)
        if r < 0.74:
            return ("delete", key, None)
        if r < 0.76:
            return ("delete", "k/1", prefix_end("k/1"))
        if r < 0.92:
            mod = self.mods.get(key, 0)
            cmp = (key, "mod", mod) if self.rng.random() < 0.8 else (key, "version", 0)
            return ("txn", cmp, (("put", key, self.value(), 0),), (("get", key, None),))
        if r < 0.96 or not self.shared.leases:
            self.next_lease += 1
            return ("grant", self.next_lease)
        return ("revoke", self.rng.choice(self.shared.leases))

    def learn(self, req: tuple[Any, ...], out: tuple[Any, ...]) -> None:
        if out[0] != "ok":
            return
        self.shared.latest_rev = max(self.shared.latest_rev, out[1])
        if req[0] == "get" and req[2] is None:
            self.mods[req[1]] = out[2][0][3] if out[2] else 0
        elif req[0] == "put":
            self.mods[req[1]] = out[1]
        elif req[0] == "txn":
            got = out[3][0] if not out[2] else None
            self.mods[req[1][0]] = out[1] if out[2] else (got[0][3] if got else 0)
        elif req[0] == "grant":
            self.shared.leases.append(req[1])
        elif req[0] == "revoke":
            with contextlib.suppress(ValueError):
                self.shared.leases.remove(req[1])

    def run(self) -> None:
        ep = Endpoint(self.member)
        try:
            while not self.stop_ev.is_set():
                req = self.pick()
                out = record(self.h, ep, self.cid, req)
                if out is None or out == ("err", "not_sent"):  # member down or paused: do not spin
                    with contextlib.suppress(grpc.FutureTimeoutError):
                        grpc.channel_ready_future(ep.channel).result(timeout=0.5)
                else:
                    self.learn(req, out)
        finally:
            ep.close()


class Compactor(threading.Thread):
    """A compaction every 100–200 ms, never past what the complete watcher has seen (so it can resume)."""

    def __init__(self, h: History, member: Member, rng: random.Random, stop: threading.Event,
                 limit: Callable[[], int]) -> None:
        super().__init__(name="compactor", daemon=True)
        self.h, self.member, self.rng, self.stop_ev, self.limit = h, member, rng, stop, limit
        self.done = 0

    def run(self) -> None:
        ep = Endpoint(self.member)
        try:
            while not self.stop_ev.wait(self.rng.uniform(0.1, 0.2)):
                at = self.limit() - self.rng.randint(0, 40)  # a little behind, so watchers can start in the past
                if at > self.done:
                    out = record(self.h, ep, -1, ("compact", at))
                    if out is not None and out[0] == "ok":
                        self.done = at
        finally:
            ep.close()


class Watcher(threading.Thread):
    """One watcher, resumed from the revision after the last it saw whenever its stream breaks."""

    def __init__(self, h: History, rec: WatchRecord, member: Member, stop: threading.Event,
                 progress_every: float | None = 0.2) -> None:
        super().__init__(name=f"watcher-{rec.id}", daemon=True)
        self.h, self.rec, self.member, self.stop_ev = h, rec, member, stop
        rec.member = member.name
        self.progress_every = progress_every  # None: only when asked (request_progress)
        self._requests: queue.Queue[rpc_pb2.WatchRequest | None] = queue.Queue()
        self._call: Any = None

    def _request_stream(self, create: rpc_pb2.WatchRequest) -> Iterator[rpc_pb2.WatchRequest]:
        yield create
        while not self.stop_ev.is_set():
            try:
                req = self._requests.get(timeout=self.progress_every or 0.2)
            except queue.Empty:  # ask for progress now and then: it must never run ahead
                if self.progress_every is None:
                    continue
                req = rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
            if req is None:
                return
            yield req

    def request_progress(self) -> None:
        self._requests.put(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))

    def run(self) -> None:
        rec = self.rec
        while not self.stop_ev.is_set() and not rec.compacted():
            start = rec.last_seen() + 1
            rec.resumes.append((self.h.now(), start))
            create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
                key=rec.key.encode(), range_end=(rec.end or "").encode(), start_revision=start,
                prev_kv=rec.prev_kv))
            ep = Endpoint(self.member)
            try:
                self._call = ep.watch.Watch(self._request_stream(create))
                for resp in self._call:
                    rec.responses.append(WatchResponse(
                        self.h.now(), resp.header.revision,
                        [("PUT" if ev.type == 0 else "DELETE", kv_tuple(ev.kv),
                          kv_tuple(ev.prev_kv) if ev.HasField("prev_kv") else None) for ev in resp.events],
                        resp.created, resp.canceled, resp.compact_revision))
                    if resp.canceled:
                        break
            except grpc.RpcError as e:
                if not self.stop_ev.is_set():
                    rec.errors.append(f"{self.h.now():.3f} {e.code().name}: {e.details()}")
            finally:
                ep.close()
            self.stop_ev.wait(0.1)

    def close(self) -> None:
        self._requests.put(None)
        if self._call is not None:
            self._call.cancel()
