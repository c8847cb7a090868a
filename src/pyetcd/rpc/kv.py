"""etcdserverpb.KV over gRPC: validate, then call the server's facade."""

from __future__ import annotations

from typing import Any

from pyetcd.api import rpc_pb2
from pyetcd.server.etcd_server import EtcdServer

from . import validate
from .errors import unary


class KVService:
    def __init__(self, server: EtcdServer) -> None:
        self.s = server

    @unary
    async def Range(self, r: rpc_pb2.RangeRequest, context: Any) -> bytes:
        validate.check_range(r)
        reply = await self.s.range(r)
        return reply.encode(self.s.header(reply.revision))

    @unary
    async def Put(self, r: rpc_pb2.PutRequest, context: Any) -> rpc_pb2.PutResponse:
        validate.check_put(r)
        return await self.s.put(r)

    @unary
    async def DeleteRange(self, r: rpc_pb2.DeleteRangeRequest, context: Any) -> rpc_pb2.DeleteRangeResponse:
        validate.check_delete(r)
        return await self.s.delete_range(r)

    @unary
    async def Txn(self, r: rpc_pb2.TxnRequest, context: Any) -> rpc_pb2.TxnResponse:
        validate.check_txn(r, self.s.cfg.max_txn_ops)
        return await self.s.txn(r)

    @unary
    async def Compact(self, r: rpc_pb2.CompactionRequest, context: Any) -> rpc_pb2.CompactionResponse:
        return await self.s.compact(r)
