"""An expiry storm: 1,000 leases (each with a key) due at the same moment. The leader must
revoke them all (ordinary DELETEs through raft) without stalling client writes meanwhile."""

from __future__ import annotations

import time

import pytest

from conftest import MemberFactory
from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support import grpc_channel

N = 1000


@pytest.mark.parametrize("kind", ["pyetcd"])
def test_expiry_storm_does_not_stall_writes(member_factory: MemberFactory, kind: str) -> None:
    m = member_factory(kind)
    ch = grpc_channel(m)
    lease, kv = rpc_pb2_grpc.LeaseStub(ch), rpc_pb2_grpc.KVStub(ch)
    grants = [lease.LeaseGrant.future(rpc_pb2.LeaseGrantRequest(TTL=3)) for _ in range(N)]
    ids = [g.result(timeout=30).ID for g in grants]
    puts = [kv.Put.future(rpc_pb2.PutRequest(key=b"storm/%05d" % i, value=b"v", lease=lid))
            for i, lid in enumerate(ids)]
    for p in puts:
        p.result(timeout=30)
    latencies: list[float] = []
    deadline = time.monotonic() + 20
    left = N
    while time.monotonic() < deadline and left:
        t0 = time.monotonic()
        kv.Put(rpc_pb2.PutRequest(key=b"writer", value=b"x"), timeout=10)
        latencies.append(time.monotonic() - t0)
        left = kv.Range(rpc_pb2.RangeRequest(key=b"storm/", range_end=b"storm0", count_only=True)).count
        time.sleep(0.01)
    assert left == 0, f"{left} of {N} leased keys still there after 20 s"
    assert lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest()).leases == []
    latencies.sort()
    assert latencies[-1] < 1.0, f"a write waited {latencies[-1]:.3f} s during the storm"
    ch.close()
