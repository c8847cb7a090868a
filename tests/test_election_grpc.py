"""The Election service over gRPC, real etcd 3.4 beside pyetcd: campaign, proclaim, leader,
observe, resign, and failover when the leader's lease expires."""

from __future__ import annotations

import contextlib
import threading
import time

import grpc
import pytest

from conftest import MemberFactory
from pyetcd.api import rpc_pb2
from pyetcd.api import v3election_pb2 as epb
from support import SERVER_KINDS, connect


def _error(fn: object, req: object) -> tuple[grpc.StatusCode, str | None]:
    with pytest.raises(grpc.RpcError) as info:
        fn(req, timeout=10)  # type: ignore[operator]
    return info.value.code(), info.value.details()  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_campaign_proclaim_observe_resign(member_factory: MemberFactory, kind: str) -> None:
    c = connect(member_factory, kind)
    lease, el = c.lease, c.election
    l1, l2 = (lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30)).ID for _ in range(2))
    assert _error(el.Leader, epb.LeaderRequest(name=b"e")) == (grpc.StatusCode.UNKNOWN, "election: no leader")
    seen: list[tuple[bytes, bytes]] = []
    stream = el.Observe(epb.LeaderRequest(name=b"e"))

    def follow() -> None:
        with contextlib.suppress(grpc.RpcError):  # cancelled at the end of the test
            seen.extend((r.kv.key, r.kv.value) for r in stream)

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.5)
    c1 = el.Campaign(epb.CampaignRequest(name=b"e", lease=l1, value=b"v1"), timeout=10)
    assert (c1.leader.name, c1.leader.key, c1.leader.lease) == (b"e", b"e/%x" % l1, l1)
    assert c1.leader.rev == c1.header.revision
    waiting = el.Campaign.future(epb.CampaignRequest(name=b"e", lease=l2, value=b"v2"), timeout=20)
    el.Proclaim(epb.ProclaimRequest(leader=c1.leader, value=b"v1b"), timeout=10)
    leader = el.Leader(epb.LeaderRequest(name=b"e"), timeout=10)
    assert (leader.kv.key, leader.kv.value, leader.kv.create_revision) == (c1.leader.key, b"v1b", c1.leader.rev)
    time.sleep(0.3)
    assert not waiting.done()
    el.Resign(epb.ResignRequest(leader=c1.leader), timeout=10)
    c2 = waiting.result()
    assert c2.leader.key == b"e/%x" % l2
    assert _error(el.Proclaim, epb.ProclaimRequest(leader=c1.leader, value=b"x")) == (
        grpc.StatusCode.UNKNOWN, "election: not leader")
    time.sleep(0.5)
    stream.cancel()
    assert seen == [(c1.leader.key, b"v1"), (c1.leader.key, b"v1b"), (c2.leader.key, b"v2")]


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_failover_on_lease_expiry(member_factory: MemberFactory, kind: str) -> None:
    c = connect(member_factory, kind)
    lease, el = c.lease, c.election
    short = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=2)).ID  # never kept alive: a dead leader
    long = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30)).ID
    el.Campaign(epb.CampaignRequest(name=b"f", lease=short, value=b"dead"), timeout=10)
    t0 = time.monotonic()
    took_over = el.Campaign(epb.CampaignRequest(name=b"f", lease=long, value=b"alive"), timeout=15)
    assert 1.0 < time.monotonic() - t0 < 6.0
    assert el.Leader(epb.LeaderRequest(name=b"f"), timeout=10).kv.key == took_over.leader.key
    assert _error(el.Resign, epb.ResignRequest()) == (grpc.StatusCode.UNKNOWN, '"leader" field must be provided')
