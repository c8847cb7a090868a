"""Differential test of lease operations: the same seeded sequence against real etcd 3.4 and
pyetcd, responses compared field by field. Server-chosen ids differ by design, so they are
paired up in grant order; remaining TTLs may differ by a second (the two clocks run apart).
``LEASE_DIFF_SEED`` / ``LEASE_DIFF_OPS`` replay a run."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from conftest import MemberFactory
from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support import Member, grpc_channel

SEEDS = [int(os.environ["LEASE_DIFF_SEED"])] if "LEASE_DIFF_SEED" in os.environ else [7, 20261127]
OPS = int(os.environ.get("LEASE_DIFF_OPS", "300"))
FIXED_IDS = [101, 102, 103, 0x7FFF_FFFF_FFFF_FFFF]
MISSING = 999
KEYS = [b"a", b"b", b"c", b"d/1", b"d/2"]
TTLS = [10, 60, 3600, 9_000_000_000, 9_000_000_001]


class Side:
    def __init__(self, m: Member) -> None:
        self.channel = grpc_channel(m)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)

    def call(self, method: str, req: Any) -> Any:
        try:
            if method == "LeaseKeepAlive":
                return list(self.lease.LeaseKeepAlive(iter([req]), timeout=10))[0]
            stub = self.kv if method in ("Put", "DeleteRange", "Range") else self.lease
            return getattr(stub, method)(req, timeout=10)
        except grpc.RpcError as e:
            return ("error", e.code(), e.details())  # type: ignore[attr-defined]


@dataclass
class Run:
    rng: random.Random
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (etcd id, pyetcd id) of live leases
    to_etcd: dict[int, int] = field(default_factory=dict)  # pyetcd id -> etcd id, for comparison

    def lease_ids(self) -> tuple[int, int]:
        """A lease for a request: one both know (by pair), a fixed id, or a missing one."""
        x = self.rng.random()
        if self.pairs and x < 0.6:
            return self.rng.choice(self.pairs)
        lid = self.rng.choice([*FIXED_IDS, MISSING])
        return lid, lid

    def ops(self) -> tuple[str, Any, Any]:
        """(method, request for etcd, request for pyetcd)."""
        x = self.rng.random()
        if x < 0.2:
            lid = self.rng.choice([0, 0, *FIXED_IDS])
            req = rpc_pb2.LeaseGrantRequest(ID=lid, TTL=self.rng.choice(TTLS))
            return "LeaseGrant", req, req
        e, p = self.lease_ids()
        if x < 0.3:
            return "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=e), rpc_pb2.LeaseRevokeRequest(ID=p)
        if x < 0.55:
            key, value = self.rng.choice(KEYS), b"v%d" % self.rng.randrange(3)
            if self.rng.random() < 0.2:
                e = p = 0
            return "Put", rpc_pb2.PutRequest(key=key, value=value, lease=e), rpc_pb2.PutRequest(key=key, value=value,
                                                                                                  lease=p)
        if x < 0.6:
            req_d = rpc_pb2.DeleteRangeRequest(key=self.rng.choice(KEYS))
            return "DeleteRange", req_d, req_d
        if x < 0.8:
            keys = self.rng.random() < 0.5
            return ("LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=e, keys=keys),
                    rpc_pb2.LeaseTimeToLiveRequest(ID=p, keys=keys))
        if x < 0.9:
            return "LeaseKeepAlive", rpc_pb2.LeaseKeepAliveRequest(ID=e), rpc_pb2.LeaseKeepAliveRequest(ID=p)
        if x < 0.95:
            req_r = rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0")
            return "Range", req_r, req_r
        return "LeaseLeases", rpc_pb2.LeaseLeasesRequest(), rpc_pb2.LeaseLeasesRequest()

    def observe(self, method: str, req_e: Any, got_e: Any, got_p: Any) -> None:
        if method == "LeaseGrant" and not isinstance(got_e, tuple) and not isinstance(got_p, tuple):
            self.pairs.append((got_e.ID, got_p.ID))
            self.to_etcd[got_p.ID] = got_e.ID
        if method == "LeaseRevoke" and not isinstance(got_e, tuple):
            self.pairs = [pr for pr in self.pairs if pr[0] != req_e.ID]

    def normalize(self, resp: Any, from_pyetcd: bool) -> Any:
        """Comparable form: header revision only, pyetcd ids as etcd's, TTLs left for ``close``."""
        if isinstance(resp, tuple):
            return resp
        out: dict[str, Any] = {"revision": resp.header.revision}
        for f, value in resp.ListFields():
            if f.name == "header":
                continue
            if f.name in ("ID", "lease") and from_pyetcd:
                value = self.to_etcd.get(value, value)
            if f.name == "keys":
                value = sorted(value)
            if f.name == "leases":
                value = sorted(self.to_etcd.get(s.ID, s.ID) if from_pyetcd else s.ID for s in value)
            if f.name == "kvs":
                value = [(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version,
                          self.to_etcd.get(kv.lease, kv.lease) if from_pyetcd else kv.lease) for kv in value]
            out[f.name] = value
        return out


def _close(a: Any, b: Any) -> bool:
    """Equal, except remaining TTLs (TTL of TimeToLive) may be one second apart."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return all(a[k] == b[k] or (k == "TTL" and abs(a[k] - b[k]) <= 1) for k in a)
    return bool(a == b)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed={s}")
def test_lease_ops_match_real_etcd(member_factory: MemberFactory, seed: int) -> None:
    etcd, py = Side(member_factory("etcd")), Side(member_factory("pyetcd"))
    run = Run(random.Random(seed))
    history: list[str] = []
    for n in range(OPS):
        method, req_e, req_p = run.ops()
        got_e, got_p = etcd.call(method, req_e), py.call(method, req_p)
        run.observe(method, req_e, got_e, got_p)
        a, b = run.normalize(got_e, False), run.normalize(got_p, True)
        history.append(f"#{n} {method} {str(req_e).strip()!r} -> {a}")
        assert _close(a, b), (f"seed {seed}: op #{n} {method} differs\netcd:   {a}\npyetcd: {b}\nlast ops:\n"
                              + "\n".join(history[-8:]) + f"\nreplay: LEASE_DIFF_SEED={seed} LEASE_DIFF_OPS={OPS}")
        if method == "LeaseGrant" and not isinstance(got_p, tuple) and not req_p.ID:
            assert 0 < got_p.ID < 2**63  # server-chosen: positive int64, as etcd's
    # finally, expiry: a 2 s lease with keys is revoked by both, at the same revision
    pe = etcd.call("LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=1))
    pp = py.call("LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=1))
    assert pe.TTL == pp.TTL == 2
    for side, lid in ((etcd, pe.ID), (py, pp.ID)):
        side.call("Put", rpc_pb2.PutRequest(key=b"exp/1", value=b"x", lease=lid))
        side.call("Put", rpc_pb2.PutRequest(key=b"exp/2", value=b"x", lease=lid))
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and any(
            s.call("Range", rpc_pb2.RangeRequest(key=b"exp/", range_end=b"exp0")).count for s in (etcd, py)):
        time.sleep(0.1)
    ra = etcd.call("Range", rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"))
    rb = py.call("Range", rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"))
    assert run.normalize(ra, False) == run.normalize(rb, True)  # same keys left, same revision
