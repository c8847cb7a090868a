"""etcdserverpb.Cluster over gRPC: the member list."""

from __future__ import annotations

from typing import Any

from pyetcd.api import rpc_pb2
from pyetcd.server.server import EtcdServer

from .errors import unary


class ClusterService:
    def __init__(self, server: EtcdServer) -> None:
        self.s = server

    @unary
    async def MemberList(self, r: rpc_pb2.MemberListRequest, context: Any) -> rpc_pb2.MemberListResponse:
        if r.linearizable:
            await self.s.linearizable_read()
        return rpc_pb2.MemberListResponse(header=self.s.header(), members=self.s.members.as_proto())
