"""Seeded generator of KV/lease requests that collide: few keys, few values, few leases.

Used by the differential test (tests/test_diff_kv.py); reusable by fault and soak tests.

The generator only ever looks at the *reference* member's responses (current and compacted
revision), so a seed plus real etcd's deterministic behaviour gives the same sequence every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from google.protobuf.message import Message

from pyetcd.api import rpc_pb2
from pyetcd.server.recipes import prefix_end  # clientv3.GetPrefixRangeEnd; only shapes requests

# At most 12 keys: etcd sorts with Go's sort.Sort, which is unstable in general but is a (stable)
# insertion sort for <= 12 elements, so ties in sorted ranges have one well-defined order.
KEYS = [b"a", b"a/1", b"a/2", b"a/3", b"ab", b"b", b"b/1", b"b/2", b"c", b"c\x00", b"\xff", b"\xff\xff"]
PREFIXES = [b"a", b"a/", b"b", b"b/", b"c", b"\xff", b"z"]
VALUES = [b"", b"x", b"y", b"zz", b"\x00\x01", b"x" * 40]
LEASES = [7001, 7002, 7003]
MISSING_LEASE = 9999
MAX_TXN_OPS = 16
MAX_REQUEST_BYTES = 64 * 1024
LEASE_TTL = 3600  # long enough that no lease expires during a run
R = rpc_pb2.RangeRequest
C = rpc_pb2.Compare


def _walk_ops(txn: rpc_pb2.TxnRequest) -> list[rpc_pb2.RequestOp]:
    out: list[rpc_pb2.RequestOp] = []
    for op in [*txn.success, *txn.failure]:
        out.append(op)
        if op.WhichOneof("request") == "request_txn":
            out += _walk_ops(op.request_txn)
    return out


def avoid_etcd_txn_panic(txn: rpc_pb2.TxnRequest) -> None:
    """Keep clear of a crash in real etcd 3.4 (and 3.5): strip ignore_value/ignore_lease from puts
    in a txn that also deletes with range_end "\\0".

    etcd's duplicate-key check (v3rpc checkIntervals) takes range_end "\\0" literally, as the empty
    interval [key, "\\0"), so it misses a put of a key that such a delete removes earlier in the same
    txn; the pre-check of ignore_value/ignore_lease (the key must exist) runs on the state before the
    txn and passes; then applying the put finds no key and etcd panics ("unexpected error during txn:
    etcdserver: key not found") and exits. Found by this generator (seed 10, DIFF_LEASES=0, op #718).
    """
    ops = _walk_ops(txn)
    if any(op.WhichOneof("request") == "request_delete_range" and op.request_delete_range.range_end == b"\x00"
           for op in ops):
        for op in ops:
            if op.WhichOneof("request") == "request_put":
                op.request_put.ignore_value = op.request_put.ignore_lease = False


@dataclass
class Op:
    """One request: the service (KV or Lease), the method name, and the message."""

    service: str
    method: str
    request: Message


@dataclass
class Generator:
    seed: int
    leases: bool = True  # False: no lease ops and no leases on puts (for servers without a lessor yet)
    rev: int = 1
    compact_rev: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def observe(self, method: str, request: Message, response: Message | None) -> None:
        """Learn the reference's revision (and compaction) from a successful response."""
        if response is None:
            return
        header = getattr(response, "header", None)
        if header is not None and header.revision:
            self.rev = max(self.rev, header.revision)
        if method == "Compact":
            self.compact_rev = max(self.compact_rev, request.revision)  # type: ignore[attr-defined]

    # ---- small choices -------------------------------------------------------------------
    def _p(self, prob: float) -> bool:
        return self.rng.random() < prob

    def key(self) -> bytes:
        return self.rng.choice(KEYS)

    def _any_rev(self) -> int:
        return self.rng.randint(1, self.rev + 1)

    def key_range(self, allow_empty_key: bool = True) -> tuple[bytes, bytes]:
        """(key, range_end) in every shape etcd accepts, and sometimes an empty key."""
        shape = self.rng.random()
        if allow_empty_key and shape < 0.02:
            return b"", self.rng.choice([b"", b"\x00"])
        if shape < 0.40:
            return self.key(), b""
        if shape < 0.62:
            p = self.rng.choice(PREFIXES)
            return p, prefix_end(p)
        if shape < 0.75:
            return self.key(), b"\x00"
        if shape < 0.82:
            return b"\x00", b"\x00"
        return self.key(), self.key()  # an interval, possibly empty or reversed

    def revision(self) -> int:
        """0 (current) mostly; else historical, compacted, or future."""
        x = self.rng.random()
        if x < 0.6:
            return 0
        if x < 0.8:
            return self.rng.randint(max(1, self.compact_rev), self.rev)
        if x < 0.9 and self.compact_rev > 1:
            return self.rng.randint(1, self.compact_rev - 1)
        return self.rev + self.rng.randint(1, 3)

    # ---- requests ------------------------------------------------------------------------
    def range_req(self) -> rpc_pb2.RangeRequest:
        key, end = self.key_range()
        req = R(key=key, range_end=end, revision=self.revision(),
                limit=self.rng.choice([0, 0, 0, 1, 2, 3, 5, -1]),
                sort_order=self.rng.choice([R.NONE, R.NONE, R.ASCEND, R.DESCEND]),
                sort_target=self.rng.choice([R.KEY, R.KEY, R.VERSION, R.CREATE, R.MOD, R.VALUE]),
                serializable=self._p(0.3), keys_only=self._p(0.15), count_only=self._p(0.1))
        for name in ("min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"):
            if self._p(0.12):
                setattr(req, name, self.rng.randint(1, self.rev))
        return req

    def put_req(self, *, in_txn: bool = False) -> rpc_pb2.PutRequest:
        req = rpc_pb2.PutRequest(key=self.key(), value=self.rng.choice(VALUES), prev_kv=self._p(0.5))
        if not in_txn and self._p(0.03):
            req.key = b""
        x = self.rng.random()
        if x < 0.2 and self.leases:
            req.lease = self.rng.choice(LEASES)
        elif x < 0.23 and self.leases:
            req.lease = MISSING_LEASE
        bad = 0.1 if in_txn else 0.2  # fewer doomed txns: one bad put fails the whole txn
        if self._p(0.1):
            req.ignore_value = True
            if not self._p(bad):
                req.value = b""  # else: "value is provided"
        if self._p(0.1):
            req.ignore_lease = True
            if not self._p(bad) or not self.leases:
                req.lease = 0  # else: "lease is provided"
        if self._p(0.01):
            req.value = b"v" * (MAX_REQUEST_BYTES + 4096)  # "request is too large"
        return req

    def delete_req(self) -> rpc_pb2.DeleteRangeRequest:
        key, end = self.key_range()
        return rpc_pb2.DeleteRangeRequest(key=key, range_end=end, prev_kv=self._p(0.5))

    def compare(self) -> rpc_pb2.Compare:
        target = self.rng.choice([C.VERSION, C.CREATE, C.MOD, C.VALUE, C.LEASE])
        c = C(key=self.key(), target=target, result=self.rng.choice([C.EQUAL, C.GREATER, C.LESS, C.NOT_EQUAL]))
        if self._p(0.15):
            p = self.rng.choice(PREFIXES)
            c.key, c.range_end = p, self.rng.choice([prefix_end(p), b"\x00"])
        if self._p(0.01):
            c.key = b""
        if target == C.VERSION:
            c.version = self.rng.randint(0, 4)
        elif target == C.CREATE:
            c.create_revision = self.rng.randint(0, self.rev + 1)
        elif target == C.MOD:
            c.mod_revision = self.rng.randint(0, self.rev + 1)
        elif target == C.VALUE:
            c.value = self.rng.choice(VALUES)
        else:
            c.lease = self.rng.choice([0, *LEASES])
        return c

    def ops(self, depth: int, n: int, distinct: bool) -> list[rpc_pb2.RequestOp]:
        """n request ops; with distinct, writes touch distinct single keys (no duplicate-key error)."""
        out: list[rpc_pb2.RequestOp] = []
        used: set[bytes] = set()
        for _ in range(n):
            kind = self.rng.choice(["range", "put", "put", "delete"] + (["txn"] if depth < 2 else []))
            if self._p(0.005):
                out.append(rpc_pb2.RequestOp())  # no request set: etcd answers "key not found"
            elif kind == "range":
                out.append(rpc_pb2.RequestOp(request_range=self.range_req()))
            elif kind == "txn":
                out.append(rpc_pb2.RequestOp(request_txn=self.txn_req(depth + 1)))
            elif kind == "put":
                put = self.put_req(in_txn=True)
                if distinct and put.key in used:
                    continue
                used.add(put.key)
                out.append(rpc_pb2.RequestOp(request_put=put))
            else:
                d = self.delete_req()
                if distinct:
                    d.key, d.range_end = self.key(), b""
                    if d.key in used:
                        continue
                    used.add(d.key)
                out.append(rpc_pb2.RequestOp(request_delete_range=d))
        return out

    def txn_req(self, depth: int = 0) -> rpc_pb2.TxnRequest:
        too_many = depth == 0 and self._p(0.04)
        n_ops = (lambda: self.rng.randint(MAX_TXN_OPS - 1, MAX_TXN_OPS + 3)) if too_many else (
            lambda: self.rng.randint(0, 3))
        distinct = depth > 0 or not self._p(0.15)  # nested writes: distinct keys within the level
        txn = rpc_pb2.TxnRequest(
            compare=[self.compare() for _ in range(self.rng.randint(0, 3))],
            success=self.ops(depth, n_ops(), distinct),
            failure=self.ops(depth, n_ops(), distinct),
        )
        if depth == 0:
            avoid_etcd_txn_panic(txn)
        return txn

    def compact_req(self) -> rpc_pb2.CompactionRequest:
        x = self.rng.random()
        if x < 0.7 and self.rev > self.compact_rev:
            # usually a modest step so history stays for historical reads
            rev = self.rng.randint(self.compact_rev + 1, max(self.compact_rev + 1, self.rev - 5))
        elif x < 0.85 and self.compact_rev > 0:
            rev = self.rng.randint(1, self.compact_rev)  # already compacted
        else:
            rev = self.rev + self.rng.randint(1, 3)  # future
        return rpc_pb2.CompactionRequest(revision=rev, physical=self._p(0.5))

    def next_op(self) -> Op:
        x = self.rng.random()
        if x < 0.30:
            return Op("KV", "Put", self.put_req())
        if x < 0.58:
            return Op("KV", "Range", self.range_req())
        if x < 0.68:
            return Op("KV", "DeleteRange", self.delete_req())
        if x < 0.90:
            return Op("KV", "Txn", self.txn_req())
        if x < 0.93 or not self.leases:
            return Op("KV", "Compact", self.compact_req())
        if x < 0.965:
            return Op("Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(ID=self.rng.choice(LEASES), TTL=LEASE_TTL))
        return Op("Lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=self.rng.choice([*LEASES, MISSING_LEASE])))
