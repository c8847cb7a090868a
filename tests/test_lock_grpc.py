"""The Lock service over gRPC (etcdctl 3.4 does locks client-side, but clients may call the
service): real etcd 3.4 and pyetcd must behave alike, and interoperate with ``etcdctl lock``."""

from __future__ import annotations

import time

import grpc
import pytest

from conftest import MemberFactory
from pyetcd.api import rpc_pb2, v3lock_pb2
from pyetcd.api import v3election_pb2 as epb
from support import SERVER_KINDS, Background, connect


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_lock_queue_unlock_and_keys(member_factory: MemberFactory, kind: str) -> None:
    c = connect(member_factory, kind)
    lease, lock, kv = c.lease, c.lock, c.kv
    l1, l2, l3 = (lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30)).ID for _ in range(3))
    first = lock.Lock(v3lock_pb2.LockRequest(name=b"lk", lease=l1), timeout=10)
    assert first.key == b"lk/%x" % l1
    assert first.header.revision == kv.Range(rpc_pb2.RangeRequest(key=first.key)).kvs[0].create_revision
    again = lock.Lock(v3lock_pb2.LockRequest(name=b"lk", lease=l1), timeout=10)  # same lease: same key, held
    assert again.key == first.key
    second = lock.Lock.future(v3lock_pb2.LockRequest(name=b"lk", lease=l2), timeout=20)
    time.sleep(0.3)
    third = lock.Lock.future(v3lock_pb2.LockRequest(name=b"lk", lease=l3), timeout=20)
    time.sleep(0.5)
    assert not second.done() and not third.done()
    unlocked = lock.Unlock(v3lock_pb2.UnlockRequest(key=first.key), timeout=10)
    got = second.result()
    assert got.key == b"lk/%x" % l2 and got.header.revision >= unlocked.header.revision
    time.sleep(0.3)
    assert not third.done()  # FIFO
    lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=l2))  # a lease's end releases its lock too
    assert third.result().key == b"lk/%x" % l3
    with pytest.raises(grpc.RpcError) as info:
        lock.Lock(v3lock_pb2.LockRequest(name=b"other", lease=0x5151), timeout=10)
    # etcd's v3lock runs the recipe through an embedded client: the message survives, the code
    # does not (a plain Go error reaches the client as Unknown)
    assert (info.value.code(), info.value.details()) == (  # type: ignore[attr-defined]
        grpc.StatusCode.UNKNOWN, "etcdserver: requested lease not found")


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_cancelled_waiter_leaves_queue(member_factory: MemberFactory, kind: str) -> None:
    c = connect(member_factory, kind)
    lease, lock, kv = c.lease, c.lock, c.kv
    l1, l2 = (lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30)).ID for _ in range(2))
    lock.Lock(v3lock_pb2.LockRequest(name=b"cq", lease=l1), timeout=10)
    waiter = lock.Lock.future(v3lock_pb2.LockRequest(name=b"cq", lease=l2))
    time.sleep(0.5)
    waiter.cancel()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and kv.Range(rpc_pb2.RangeRequest(key=b"cq/%x" % l2)).count:
        time.sleep(0.1)
    assert kv.Range(rpc_pb2.RangeRequest(key=b"cq/", range_end=b"cq0")).count == 1  # only the holder


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_service_and_etcdctl_lock_exclude_each_other(member_factory: MemberFactory, kind: str) -> None:
    c = connect(member_factory, kind)
    lease, lock = c.lease, c.lock
    lid = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30)).ID
    held = lock.Lock(v3lock_pb2.LockRequest(name=b"X", lease=lid), timeout=10)
    ctl = Background(c.member, "lock", "X")
    try:
        time.sleep(1.0)
        assert ctl.lines == []
        lock.Unlock(v3lock_pb2.UnlockRequest(key=held.key), timeout=10)
        assert ctl.wait_lines(1, timeout=10)[0].startswith("X/")
    finally:
        ctl.stop()


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_lock_and_campaign_without_lease_get_a_session_lease(member_factory: MemberFactory, kind: str) -> None:
    """Lease 0: etcd's server-side session grants its own lease (the 60 s session default)."""
    c = connect(member_factory, kind)
    lease, lock = c.lease, c.lock
    key = lock.Lock(v3lock_pb2.LockRequest(name=b"nolease"), timeout=10).key
    lid = int(key.split(b"/")[1], 16)
    ttl = lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lid, keys=True))
    assert ttl.grantedTTL == 60 and list(ttl.keys) == [key]
    won = c.election.Campaign(epb.CampaignRequest(name=b"e0", value=b"v"), timeout=10)
    assert won.leader.lease != 0 and won.leader.key == b"e0/%x" % won.leader.lease
    assert lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=won.leader.lease)).grantedTTL == 60


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_many_waiters_served_in_queue_order(member_factory: MemberFactory, kind: str) -> None:
    c = connect(member_factory, kind)
    leases = [c.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60)).ID for _ in range(20)]
    holder = c.lock.Lock(v3lock_pb2.LockRequest(name=b"q", lease=leases[0]), timeout=10)
    waiting = {}
    for lid in leases[1:]:
        waiting[lid] = c.lock.Lock.future(v3lock_pb2.LockRequest(name=b"q", lease=lid), timeout=60)
        time.sleep(0.02)
    queued = c.kv.Range(rpc_pb2.RangeRequest(key=b"q/", range_end=b"q0", sort_target=rpc_pb2.RangeRequest.CREATE))
    order = [int(kv.key.split(b"/")[1], 16) for kv in queued.kvs]
    assert order[0] == leases[0] and sorted(order[1:]) == sorted(leases[1:])
    for lid in order[1:]:
        c.lock.Unlock(v3lock_pb2.UnlockRequest(key=holder.key), timeout=10)
        holder = waiting[lid].result(timeout=10)
        assert holder.key == b"q/%x" % lid
        assert sum(f.done() for f in waiting.values()) == order.index(lid)  # the next ones still wait
