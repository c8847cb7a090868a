"""Unit tests of the lessor's parts: TTL rules, ids, the expiry queue, promotion spreading,
renew/expiry with a fake clock, and grant/revoke applied inside one LMDB batch."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from pyetcd import errors
from pyetcd.api import rpc_pb2
from pyetcd.lease import ExpiryQueue, IdGenerator, Lease, Lessor, min_lease_ttl
from pyetcd.lease.lessor import RETRY_INTERVAL, REVOKE_RATE
from pyetcd.mvcc import KVStore
from pyetcd.server.batch import ApplyBatch
from pyetcd.storage.backend import Backend
from support.clock import ManualClock


def test_min_lease_ttl_is_etcds() -> None:
    assert min_lease_ttl(10, 100) == 2  # etcd defaults: 1.5 s rounded up
    assert min_lease_ttl(5, 100) == 1
    assert min_lease_ttl(50, 100) == 8  # (3*50)//2 = 75 ticks of 100 ms = 7.5 s


def test_ids_positive_unique_and_member_prefixed() -> None:
    gen = IdGenerator(0xABCD_1234, now_ns=1_700_000_000_000 * 1_000_000)
    ids = [gen.next() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(0 < i < 2**63 for i in ids)
    assert {i >> 48 for i in ids} == {0x1234}
    assert ids == sorted(ids)


def test_expiry_queue_supersedes_and_limits() -> None:
    q = ExpiryQueue()
    for i in range(10):
        q.register(i, float(i))
    q.register(3, 100.0)  # renewed: its old entry must not surface
    q.unregister(4)
    assert q.pop_due(5.0, limit=3) == [0, 1, 2]
    assert q.pop_due(5.0, limit=10) == [5]
    assert q.pop_due(1000.0, limit=10) == [6, 7, 8, 9, 3]
    assert len(q) == 0


def _lessor(tmp_path: Path, clock: ManualClock) -> Lessor:
    return Lessor(Backend(tmp_path / "db"), min_ttl=2, clock=clock)


def test_promote_spreads_a_pile_of_leases(tmp_path: Path) -> None:
    clock = ManualClock()
    lessor = _lessor(tmp_path, clock)
    for i in range(1, 5001):
        lessor.leases[i] = Lease(i, 10)
    lessor.promote(extend=1.0)
    remaining = [lease.remaining(clock.now) for lease in lessor.leases.values()]
    assert min(remaining) >= 11.0  # nobody loses time on promotion
    per_second = Counter(int(r) for r in remaining)
    assert max(per_second.values()) <= REVOKE_RATE  # within the revoke rate: no storm at once
    assert max(remaining) < 11.0 + 5000 / (3 * REVOKE_RATE // 4) + 1


def test_renew_and_take_expired(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        lessor = _lessor(tmp_path, clock)
        with pytest.raises(errors.ErrNoLeader):
            await lessor.renew(1)  # not the leader: no clock to renew against
        lessor.promote(extend=0.0)
        lessor._add(Lease(1, 5))
        lessor._add(Lease(2, 5))
        with pytest.raises(errors.ErrLeaseNotFound):
            await lessor.renew(3)
        clock.now += 4
        assert await lessor.renew(1) == 5
        clock.now += 2
        assert lessor.take_expired(10) == [2]
        assert lessor.take_expired(10) == []  # in flight: retried only after RETRY_INTERVAL
        clock.now += RETRY_INTERVAL
        assert sorted(lessor.take_expired(10)) == [1, 2]
        waiter = asyncio.ensure_future(lessor.renew(2))  # expired: waits for the revoke
        await asyncio.sleep(0)
        assert not waiter.done()
        lessor._remove(2)
        with pytest.raises(errors.ErrLeaseNotFound):
            await waiter
        lessor.demote()
        assert lessor.take_expired(10) == []

    asyncio.run(scenario())


def test_grant_put_revoke_in_one_batch(tmp_path: Path) -> None:
    clock = ManualClock()
    backend = Backend(tmp_path / "db")
    lessor, store = Lessor(backend, min_ttl=2, clock=clock), KVStore(backend)
    txn = backend.begin_write()
    batch = ApplyBatch(txn=txn, kv=store.writer(txn))
    granted = lessor.grant(batch, rpc_pb2.LeaseGrantRequest(ID=7, TTL=1))
    assert (granted.ID, granted.TTL) == (7, 2)
    with pytest.raises(errors.ErrLeaseExist):
        lessor.grant(batch, rpc_pb2.LeaseGrantRequest(ID=7, TTL=5))
    assert lessor.exists(batch, 7) and 7 not in lessor.leases  # visible to the batch, not yet to readers
    t = batch.kv.begin()
    t.put(b"k1", b"v", 7)
    t.put(b"k2", b"v", 7)
    t.end()
    lessor.revoke(batch, rpc_pb2.LeaseRevokeRequest(ID=7))  # sees keys attached earlier in the batch
    assert [(c.type, c.key) for c in batch.changes][-2:] == [(1, b"k1"), (1, b"k2")]  # DELETEs
    assert batch.changes[-1].rev == batch.changes[-2].rev  # one revision
    with pytest.raises(errors.ErrLeaseNotFound):
        lessor.revoke(batch, rpc_pb2.LeaseRevokeRequest(ID=7))
    batch.kv.finish()
    txn.commit()
    store.publish(batch.kv)
    for hook in batch.publish_hooks:
        hook()
    lessor.on_changes(batch.changes)
    assert lessor.leases == {}
    backend.close()
