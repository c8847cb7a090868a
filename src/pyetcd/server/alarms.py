"""Alarms (NOSPACE, CORRUPT) and the backend quota, as etcd raises and enforces them.

A write that would take the backend past ``--quota-backend-bytes`` is refused with
``etcdserver: mvcc: database space exceeded`` and raises the NOSPACE alarm through raft; while
that alarm is active the applier refuses every request that would grow the store (puts, writing
txns, lease grants) — deletes and compaction still work — until an operator disarms it.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from typing import Any

import lmdb

from pyetcd import errors
from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.storage.backend import ALARM, Backend

from .batch import ApplyBatch
from .kvops import is_txn_read_only

NOSPACE = rpc_pb2.NOSPACE
_KEY = struct.Struct(">Qi")  # member id, alarm type (int32: etcd stores any type a client names)
# etcd's cost estimates for what a request adds to the backend
KV_OVERHEAD = 256
LEASE_OVERHEAD = 64


class Alarms:
    """The active alarms: written by apply, read by the event loop (swapped whole on publish)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.active: frozenset[tuple[int, int]] = frozenset()
        self.reload()

    def reload(self) -> None:
        backend = self.backend
        with backend.read() as txn:
            self.active = frozenset(_KEY.unpack(bytes(k)) for k, _ in txn.cursor(db=self.db).iternext())

    @property
    def db(self) -> lmdb._Database:
        return self.backend.db(ALARM)

    def members(self, alarm: int = rpc_pb2.NONE) -> list[rpc_pb2.AlarmMember]:
        return [rpc_pb2.AlarmMember(memberID=m, alarm=a) for m, a in sorted(self.active)  # type: ignore[arg-type]
                if alarm in (rpc_pb2.NONE, a)]

    def has(self, alarm: int) -> bool:
        return any(a == alarm for _, a in self.active)

    def apply(self, batch: ApplyBatch, r: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        resp = rpc_pb2.AlarmResponse()
        if r.action == rpc_pb2.AlarmRequest.GET:
            resp.alarms.extend(self.members(r.alarm))
            return resp
        key = (r.memberID, r.alarm)
        if r.action == rpc_pb2.AlarmRequest.ACTIVATE:
            if r.alarm == rpc_pb2.NONE:
                return resp
            batch.txn.put(_KEY.pack(*key), b"", db=self.db)
            new = self.active | {key}
        elif r.action == rpc_pb2.AlarmRequest.DEACTIVATE:
            if key not in self.active:
                return resp
            batch.txn.delete(_KEY.pack(*key), db=self.db)
            new = self.active - {key}
        else:
            return resp
        resp.alarms.add(memberID=r.memberID, alarm=r.alarm)
        self.active = new  # the apply thread reads it next; readers see the swap as one step
        return resp

    def check_capped(self, req: internal_pb2.InternalRequest) -> None:
        """With NOSPACE raised, refuse what would grow the store (etcd's applierV3Capped)."""
        if not self.has(NOSPACE):
            return
        kind = req.WhichOneof("request")
        if kind in ("put", "lease_grant") or (kind == "txn" and not is_txn_read_only(req.txn)):
            raise errors.ErrNoSpace()


def request_cost(req: Any) -> int:
    """etcd's estimate of the bytes a request adds: puts, the larger branch of a txn, a lease."""
    if isinstance(req, rpc_pb2.PutRequest):
        return KV_OVERHEAD + len(req.key) + len(req.value)
    if isinstance(req, rpc_pb2.TxnRequest):
        def branch(ops: Any) -> int:
            return sum(request_cost(op.request_put) for op in ops if op.WhichOneof("request") == "request_put")
        return max(branch(req.success), branch(req.failure))
    if isinstance(req, rpc_pb2.LeaseGrantRequest):
        return LEASE_OVERHEAD
    return 0


class Quota:
    """--quota-backend-bytes: refuse a write that would not fit, and raise NOSPACE."""

    def __init__(self, backend: Backend, quota_bytes: int, member_id: int,
                 propose: Callable[[internal_pb2.InternalRequest], Awaitable[Any]]) -> None:
        self.backend, self.quota, self.member_id, self.propose = backend, quota_bytes, member_id, propose

    async def check(self, req: Any) -> None:
        cost = request_cost(req)
        # the high-water mark is free to read and usually far below the quota; near it, count
        # the pages really in use (the raft log lives elsewhere and never counts)
        if self.backend.high_water + cost < self.quota or self.backend.bytes_in_use() + cost < self.quota:
            return
        alarm = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=self.member_id, alarm=NOSPACE)
        await self.propose(internal_pb2.InternalRequest(alarm=alarm))
        raise errors.ErrNoSpace()
