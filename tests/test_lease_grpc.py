"""The Lease service over gRPC, against real etcd 3.4 and pyetcd: the same requests must get
the same answers (errors by code and message, TTL rules, revoke semantics)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support import SERVER_KINDS, CertPaths, Member, grpc_channel, start_member


@pytest.fixture(scope="module", params=SERVER_KINDS)
def member(request: pytest.FixtureRequest, certs: CertPaths, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Member]:
    from support import pyetcd_unavailable_reason
    if request.param == "pyetcd" and (reason := pyetcd_unavailable_reason()):
        pytest.skip(reason)
    m = start_member(request.param, tmp_path_factory.mktemp(request.param), certs)
    yield m
    m.stop()


@pytest.fixture(scope="module")
def stubs(member: Member) -> Iterator[tuple[rpc_pb2_grpc.LeaseStub, rpc_pb2_grpc.KVStub]]:
    ch = grpc_channel(member)
    yield rpc_pb2_grpc.LeaseStub(ch), rpc_pb2_grpc.KVStub(ch)
    ch.close()


def _err(fn: object, req: object) -> tuple[grpc.StatusCode, str | None]:
    with pytest.raises(grpc.RpcError) as info:
        fn(req, timeout=10)  # type: ignore[operator]
    return info.value.code(), info.value.details()  # type: ignore[attr-defined]


def test_grant_chooses_positive_unique_ids(stubs: tuple[rpc_pb2_grpc.LeaseStub, rpc_pb2_grpc.KVStub]) -> None:
    lease, _ = stubs
    ids = [lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60)).ID for _ in range(20)]
    assert all(0 < i < 2**63 for i in ids)
    assert len(set(ids)) == 20


def test_minimum_ttl_and_too_large(stubs: tuple[rpc_pb2_grpc.LeaseStub, rpc_pb2_grpc.KVStub]) -> None:
    lease, _ = stubs
    # default --election-timeout 1000 / --heartbeat-interval 100: ceil(15 * 100ms) = 2 s
    assert lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=1)).TTL == 2
    assert lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=0)).TTL == 2
    assert lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=9_000_000_000)).TTL == 9_000_000_000
    assert _err(lease.LeaseGrant, rpc_pb2.LeaseGrantRequest(TTL=9_000_000_001)) == (
        grpc.StatusCode.OUT_OF_RANGE, "etcdserver: too large lease TTL")


def test_client_id_and_duplicate(stubs: tuple[rpc_pb2_grpc.LeaseStub, rpc_pb2_grpc.KVStub]) -> None:
    lease, _ = stubs
    resp = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(ID=0x1234, TTL=60))
    assert (resp.ID, resp.TTL, resp.error) == (0x1234, 60, "")
    assert resp.header.revision > 0 and resp.header.cluster_id and resp.header.member_id
    assert _err(lease.LeaseGrant, rpc_pb2.LeaseGrantRequest(ID=0x1234, TTL=60)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: lease already exists")


def test_unknown_lease_answers(stubs: tuple[rpc_pb2_grpc.LeaseStub, rpc_pb2_grpc.KVStub]) -> None:
    lease, kv = stubs
    missing = 0x7777_0000_0001
    ttl = lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=missing, keys=True))
    assert (ttl.ID, ttl.TTL, ttl.grantedTTL, list(ttl.keys)) == (missing, -1, 0, [])
    not_found = (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")
    assert _err(lease.LeaseRevoke, rpc_pb2.LeaseRevokeRequest(ID=missing)) == not_found
    assert _err(kv.Put, rpc_pb2.PutRequest(key=b"k", value=b"v", lease=missing)) == not_found
    ka = list(lease.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=missing)]), timeout=10))
    assert [(r.ID, r.TTL) for r in ka] == [(missing, 0)]


def test_keepalive_timetolive_and_keys(stubs: tuple[rpc_pb2_grpc.LeaseStub, rpc_pb2_grpc.KVStub]) -> None:
    lease, kv = stubs
    lid = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=10)).ID
    for key in (b"ka/2", b"ka/1"):
        kv.Put(rpc_pb2.PutRequest(key=key, value=b"v", lease=lid))
    kv.Put(rpc_pb2.PutRequest(key=b"ka/3", value=b"v", lease=lid))
    kv.Put(rpc_pb2.PutRequest(key=b"ka/3", value=b"detached"))  # a put without the lease detaches
    time.sleep(1.2)
    ttl = lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lid, keys=True))
    assert ttl.grantedTTL == 10 and 7 <= ttl.TTL <= 9
    assert sorted(ttl.keys) == [b"ka/1", b"ka/2"]
    reqs = [rpc_pb2.LeaseKeepAliveRequest(ID=lid)] * 3
    answers = list(lease.LeaseKeepAlive(iter(reqs), timeout=10))
    assert [(r.ID, r.TTL) for r in answers] == [(lid, 10)] * 3
    assert lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lid)).TTL in (9, 10)
    assert lid in [s.ID for s in lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest()).leases]


def test_revoke_deletes_attached_keys_in_one_revision(stubs: tuple[rpc_pb2_grpc.LeaseStub, rpc_pb2_grpc.KVStub]) -> None:
    lease, kv = stubs
    lid = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60)).ID
    for i in range(5):
        kv.Put(rpc_pb2.PutRequest(key=b"rv/%d" % i, value=b"v", lease=lid))
    kv.Put(rpc_pb2.PutRequest(key=b"rv/other", value=b"v"))
    before = kv.Range(rpc_pb2.RangeRequest(key=b"a")).header.revision
    resp = lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lid))
    assert resp.header.revision == before + 1  # all five deletes share one revision
    left = kv.Range(rpc_pb2.RangeRequest(key=b"rv/", range_end=b"rv0"))
    assert [x.key for x in left.kvs] == [b"rv/other"]
    assert lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lid)).TTL == -1
    assert lid not in [s.ID for s in lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest()).leases]
    # revoking a lease without keys does not use a revision
    empty = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60))
    assert lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=empty.ID)).header.revision == empty.header.revision


def test_expiry_deletes_keys(stubs: tuple[rpc_pb2_grpc.LeaseStub, rpc_pb2_grpc.KVStub]) -> None:
    lease, kv = stubs
    lid = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=2)).ID
    kv.Put(rpc_pb2.PutRequest(key=b"exp/1", value=b"v", lease=lid))
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and kv.Range(rpc_pb2.RangeRequest(key=b"exp/1")).count:
        time.sleep(0.1)
    assert kv.Range(rpc_pb2.RangeRequest(key=b"exp/1")).count == 0
    assert lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lid)).TTL == -1
    ka = list(lease.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=lid)]), timeout=10))
    assert [(r.ID, r.TTL) for r in ka] == [(lid, 0)]
