"""Maintenance.Hash (issue 9): served, stable while nothing changes, changed by a write.

Its value cannot equal real etcd's (that hashes etcd's bolt file, laid out differently); what
both promise is checked on both: same data, same hash — across reads and a restart — and a
write changes it. The unit test shows what "same data" means for pyetcd: two members that
applied the same entries hash equally although their raft logs and applied indexes differ.
"""

from __future__ import annotations

from pathlib import Path

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from pyetcd.mvcc import KVStore
from pyetcd.server.storehash import PER_MEMBER_BUCKETS, store_hash
from pyetcd.storage.backend import BUCKETS, META, Backend
from support import Member, grpc_channel


def _hash(m: Member) -> rpc_pb2.HashResponse:
    with grpc_channel(m) as ch:
        resp: rpc_pb2.HashResponse = rpc_pb2_grpc.MaintenanceStub(ch).Hash(rpc_pb2.HashRequest(), timeout=10)
        return resp


def test_hash_is_stable_until_a_write(any_member: Member) -> None:
    with grpc_channel(any_member) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        put = kv.Put(rpc_pb2.PutRequest(key=b"a", value=b"1"), timeout=10)
        first = _hash(any_member)
        assert first.header.revision == put.header.revision
        kv.Range(rpc_pb2.RangeRequest(key=b"a"), timeout=10)
        assert _hash(any_member).hash == first.hash
        any_member.restart()
        assert _hash(any_member).hash == first.hash
    with grpc_channel(any_member) as ch:
        rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=b"a", value=b"2"), timeout=10)
    second = _hash(any_member)
    assert second.hash != first.hash and second.header.revision == first.header.revision + 1


def _backend_with(path: Path, applied_index: bytes, log_entries: int) -> Backend:
    backend = Backend(path)
    store = KVStore(backend)
    txn = backend.begin_write()
    w = store.writer(txn)
    t = w.begin()
    t.put(b"k", b"v", 0)
    t.end()
    w.finish()
    txn.put(b"consistent_index", applied_index, db=backend.db(META))
    for bucket in PER_MEMBER_BUCKETS & set(BUCKETS):  # the raft log, while it shares the file
        for i in range(log_entries):
            txn.put(i.to_bytes(8, "big"), b"entry", db=backend.db(bucket))
    txn.commit()
    return backend


def test_hash_covers_replicated_data_only(tmp_path: Path) -> None:
    a = _backend_with(tmp_path / "a", b"\x00" * 7 + b"\x05", log_entries=3)
    b = _backend_with(tmp_path / "b", b"\x00" * 7 + b"\x09", log_entries=10)
    try:
        assert store_hash(a) == store_hash(b)
        txn = b.begin_write()
        txn.put(b"extra", b"x", db=b.db(META))
        txn.commit()
        assert store_hash(a) != store_hash(b)
    finally:
        a.close()
        b.close()
