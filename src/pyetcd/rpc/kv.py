"""etcdserverpb.KV over gRPC."""

from __future__ import annotations

from typing import Any

from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.server import kvops
from pyetcd.server.server import EtcdServer

from . import validate
from .errors import unary


class KVService:
    def __init__(self, server: EtcdServer) -> None:
        self.s = server

    def _fill(self, resp: Any) -> Any:
        """etcd's header.fill: ids and term always; the revision only where apply left none."""
        h = resp.header
        h.cluster_id, h.member_id, h.raft_term = self.s.cluster_id, self.s.id, self.s.term
        if not h.revision:
            h.revision = self.s.kv.current_rev
        return resp

    @unary
    async def Range(self, r: rpc_pb2.RangeRequest, context: Any) -> bytes:
        validate.check_range(r)
        if not r.serializable:
            await self.s.linearizable_read()
        reply = self.s.range(r)
        return reply.encode(self.s.header(reply.revision))

    @unary
    async def Put(self, r: rpc_pb2.PutRequest, context: Any) -> rpc_pb2.PutResponse:
        validate.check_put(r)
        await self.s.quota.check(r)
        return self._fill(await self.s.propose(internal_pb2.InternalRequest(put=r)))

    @unary
    async def DeleteRange(self, r: rpc_pb2.DeleteRangeRequest, context: Any) -> rpc_pb2.DeleteRangeResponse:
        validate.check_delete(r)
        return self._fill(await self.s.propose(internal_pb2.InternalRequest(delete_range=r)))

    @unary
    async def Txn(self, r: rpc_pb2.TxnRequest, context: Any) -> rpc_pb2.TxnResponse:
        validate.check_txn(r, self.s.cfg.max_txn_ops)
        if kvops.is_txn_read_only(r):
            if not _txn_serializable(r):
                await self.s.linearizable_read()
            return self._fill(self.s.txn_read_only(r))
        await self.s.quota.check(r)
        req = internal_pb2.InternalRequest()
        req.txn.CopyFrom(r)  # not InternalRequest(txn=r): that merges by re-parsing, within upb's 100 levels
        return self._fill(await self.s.propose(req))

    @unary
    async def Compact(self, r: rpc_pb2.CompactionRequest, context: Any) -> rpc_pb2.CompactionResponse:
        return self._fill(await self.s.propose(internal_pb2.InternalRequest(compaction=r)))


def _txn_serializable(t: rpc_pb2.TxnRequest) -> bool:
    """A read-only txn is served locally only if every range in it asks to be serializable."""
    for op in list(t.success) + list(t.failure):
        kind = op.WhichOneof("request")
        if kind == "request_range" and not op.request_range.serializable:
            return False
        if kind == "request_txn" and not _txn_serializable(op.request_txn):
            return False
    return True
