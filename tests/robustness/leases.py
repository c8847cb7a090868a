"""Short leases that expire: keepers that hold them alive, and the wait for their end after the traffic.

A ``LeaseKeeper`` grants a lease with a short TTL, attaches two keys of its own to it, and keeps it
alive over one LeaseKeepAlive stream (a renewal every TTL/3 s, as etcd's client does), putting its
keys with the lease again now and then. Every keep-alive is recorded as ``("keepalive", id)`` ->
``("ok", TTL > 0)``: a pause longer than the TTL makes the lease expire, after which the keeper must
be told TTL 0 (and its puts "lease not found"); then it grants the next lease. Clients attach keys
to these leases too (``Shared.short_leases``). No client revokes them: only expiry ends them, which
is what ``expiry`` models. After the traffic the keepers stop and ``await_expiry`` asks each lease's
time-to-live until every one is gone, so each expiry is seen and the final state holds none (and
asks once after each lease a revoke with an unknown outcome was sent for).
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
import time

import grpc

from pyetcd.api import rpc_pb2
from robustness.history import History
from robustness.traffic import REQUEST_TIMEOUT, Endpoint, Shared, definite_error, record
from support.member import Member

KEYS_PER_LEASE = 2  # at least two: an expiry must delete them in one revision
EXPIRY_GRACE = 10.0  # seconds past the TTL: a new leader's extension (an election timeout), etcd's 3 s retry


class _KeepAliveStream:
    """One LeaseKeepAlive stream: a request, then its answer within a timeout (a reader thread waits)."""

    def __init__(self, ep: Endpoint) -> None:
        self._requests: queue.Queue[rpc_pb2.LeaseKeepAliveRequest | None] = queue.Queue()
        self._answers: queue.Queue[rpc_pb2.LeaseKeepAliveResponse | grpc.RpcError | None] = queue.Queue()
        self._call = ep.lease.LeaseKeepAlive(iter(self._requests.get, None))
        threading.Thread(target=self._read, name="keepalive-reader", daemon=True).start()

    def _read(self) -> None:
        try:
            for resp in self._call:
                self._answers.put(resp)
        except grpc.RpcError as e:
            self._answers.put(e)
        self._answers.put(None)

    def renew(self, lease: int, timeout: float) -> tuple[bool, ...] | None:
        """``("ok", alive)``, or None when the answer did not come (the stream is then useless)."""
        self._requests.put(rpc_pb2.LeaseKeepAliveRequest(ID=lease))
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(answer, rpc_pb2.LeaseKeepAliveResponse):
            return ("ok", answer.TTL > 0)  # type: ignore[return-value]
        if isinstance(answer, grpc.RpcError) and definite_error(answer) == ("err", "lease_not_found"):
            return ("ok", False)  # type: ignore[return-value]
        return None

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()


class LeaseKeeper(threading.Thread):
    """One client holding a short lease at a time: grant, attach keys, keep alive until it is gone."""

    def __init__(self, cid: int, h: History, member: Member, rng: random.Random, stop: threading.Event,
                 shared: Shared, ttl: int, lease_base: int) -> None:
        super().__init__(name=f"lease-keeper-{cid}", daemon=True)
        self.cid, self.h, self.member, self.rng, self.stop_ev = cid, h, member, rng, stop
        self.shared, self.ttl = shared, ttl
        self.next_lease = lease_base + cid * 1_000_000
        self.n = 0

    def _put(self, ep: Endpoint, lease: int, j: int) -> tuple[object, ...] | None:
        self.n += 1
        return record(self.h, ep, self.cid, ("put", f"k/L{self.cid}/{j}", f"c{self.cid}-{self.n}", lease))

    def _grant(self, ep: Endpoint) -> int | None:
        self.next_lease += 1
        out = record(self.h, ep, self.cid, ("grant", self.next_lease, self.ttl))
        if out is None or out[0] != "ok":
            with contextlib.suppress(grpc.FutureTimeoutError):  # a paused or restarting member
                grpc.channel_ready_future(ep.channel).result(timeout=0.5)
            return None
        return self.next_lease

    def _keep(self, ep: Endpoint, lease: int) -> None:
        """Renew every TTL/3 s until an answer says the lease is gone or the traffic stops."""
        stream = _KeepAliveStream(ep)
        try:
            while not self.stop_ev.wait(self.ttl / 3):
                op = self.h.invoke(self.cid, ("keepalive", lease))
                out = stream.renew(lease, timeout=REQUEST_TIMEOUT * 1.5)
                self.h.done(op, out)
                if out is None:  # timed out or broke: a new stream for the next renewal
                    stream.close()
                    stream = _KeepAliveStream(ep)
                elif not out[1]:
                    return
                if self.rng.random() < 0.3:
                    self._put(ep, lease, self.rng.randrange(KEYS_PER_LEASE))
        finally:
            stream.close()

    def run(self) -> None:
        ep = Endpoint(self.member)
        try:
            while not self.stop_ev.is_set():
                lease = self._grant(ep)
                if lease is None:
                    continue
                for j in range(KEYS_PER_LEASE):
                    self._put(ep, lease, j)
                self.shared.short_leases.append(lease)
                try:
                    self._keep(ep, lease)
                finally:
                    self.shared.short_leases.remove(lease)
        finally:
            ep.close()


def granted_short_leases(h: History) -> list[tuple[int, int]]:
    """(lease, ttl) of every short lease a grant was answered for."""
    return [(op.input[1], op.input[2]) for op in h.ops
            if op.input[0] == "grant" and len(op.input) > 2 and op.output is not None and op.output[0] == "ok"]


def await_expiry(h: History, members: list[Member], client: int) -> list[str]:
    """Ask every granted short lease's time-to-live (recorded) until each is gone; the leases still
    alive EXPIRY_GRACE s past their TTL after the traffic stopped (nothing renews them now).

    Each lease a revoke with an unknown outcome was sent for is asked once as well: alive or gone,
    the answer bounds that revoke for the checker (``settle``)."""
    unsure = sorted({op.input[1] for op in h.ops if op.input[0] == "revoke" and op.output is None})
    if unsure:
        ep = Endpoint(members[0])
        try:
            for lease in unsure:
                record(h, ep, client, ("ttl", lease))
        finally:
            ep.close()
    pending = dict(granted_short_leases(h))
    if not pending:
        return []
    deadline = time.monotonic() + max(pending.values()) + EXPIRY_GRACE
    n = 0
    while pending and time.monotonic() < deadline:
        ep = Endpoint(members[n % len(members)])
        n += 1
        try:
            for lease in list(pending):
                out = record(h, ep, client, ("ttl", lease))
                if out == ("ok", False):
                    del pending[lease]
        finally:
            ep.close()
        time.sleep(0.3)
    return [f"short lease {lease:x} (TTL {ttl}s) still alive more than {ttl + EXPIRY_GRACE:.0f}s after the "
            f"traffic stopped, with nothing renewing it" for lease, ttl in sorted(pending.items())]


def activity(h: History, traffic_end: float) -> str:
    """What the short leases went through: expiries are what a lease-pause run is for."""
    grants = granted_short_leases(h)
    ours = {lease for lease, _ in grants}
    gone_early = {op.input[1] for op in h.ops if op.input[0] == "keepalive" and op.output == ("ok", False)
                  and op.ret is not None and op.ret <= traffic_end}
    alive = sum(1 for op in h.ops if op.input[0] == "keepalive" and op.output == ("ok", True))
    refused = sum(1 for op in h.ops if op.input[0] == "put" and op.input[3] in ours
                  and op.output == ("err", "lease_not_found"))
    return (f"short leases: {len(grants)} granted, {len(gone_early)} expired under traffic, {alive} keep-alives "
            f"answered alive, {refused} puts refused with 'lease not found'")
