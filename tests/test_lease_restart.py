"""Leases across a restart, real etcd 3.4 beside pyetcd: leases and their attached keys
survive; remaining TTLs are renewed on restart (the new leader's Promote), not expired en
masse; a lease revoked before the restart stays gone; expiry still works afterwards."""

from __future__ import annotations

import time

import pytest

from conftest import MemberFactory
from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support import SERVER_KINDS, Member, grpc_channel


def _stubs(m: Member) -> tuple[rpc_pb2_grpc.LeaseStub, rpc_pb2_grpc.KVStub]:
    ch = grpc_channel(m)
    return rpc_pb2_grpc.LeaseStub(ch), rpc_pb2_grpc.KVStub(ch)


def _keys(kv: rpc_pb2_grpc.KVStub, prefix: bytes) -> list[bytes]:
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    return [x.key for x in kv.Range(rpc_pb2.RangeRequest(key=prefix, range_end=end, keys_only=True)).kvs]


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_leases_and_keys_survive_restart(member_factory: MemberFactory, kind: str, crash: bool) -> None:
    m = member_factory(kind)
    lease, kv = _stubs(m)
    long = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30)).ID
    short = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=5)).ID
    gone = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30)).ID
    for i in range(3):
        kv.Put(rpc_pb2.PutRequest(key=b"long/%d" % i, value=b"v", lease=long))
    kv.Put(rpc_pb2.PutRequest(key=b"short/0", value=b"v", lease=short))
    kv.Put(rpc_pb2.PutRequest(key=b"gone/0", value=b"v", lease=gone))
    lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=gone))
    time.sleep(3)  # the short lease has ~2 s left when the member goes down
    if crash:
        m.kill9()
    else:
        m.stop()
    m.start()
    lease, kv = _stubs(m)
    assert sorted(s.ID for s in lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest()).leases) == sorted([long, short])
    t_long = lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=long, keys=True))
    assert sorted(t_long.keys) == [b"long/0", b"long/1", b"long/2"]
    assert t_long.grantedTTL == 30 and 28 <= t_long.TTL <= 31  # renewed: full TTL (+ an election timeout)
    t_short = lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=short, keys=True))
    assert list(t_short.keys) == [b"short/0"] and 3 <= t_short.TTL <= 6  # not expired en masse
    assert lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=gone)).TTL == -1
    assert _keys(kv, b"long/") == [b"long/0", b"long/1", b"long/2"] and _keys(kv, b"gone/") == []
    kv.Put(rpc_pb2.PutRequest(key=b"long/3", value=b"v", lease=long))  # the lease is usable
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _keys(kv, b"short/"):
        time.sleep(0.2)
    assert _keys(kv, b"short/") == []  # expiry still runs after the restart
    assert lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=short)).TTL == -1
    lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=long))  # attachments were rebuilt at start
    assert _keys(kv, b"long/") == []
