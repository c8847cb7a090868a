"""etcdserverpb.Cluster over gRPC: the member list and membership changes."""

from __future__ import annotations

from typing import Any

from pyetcd.api import rpc_pb2
from pyetcd.server.etcd_server import EtcdServer

from .errors import unary


class ClusterService:
    def __init__(self, server: EtcdServer) -> None:
        self.s = server

    @unary
    async def MemberList(self, r: rpc_pb2.MemberListRequest, context: Any) -> rpc_pb2.MemberListResponse:
        members = await self.s.member_list(r.linearizable)
        return rpc_pb2.MemberListResponse(header=self.s.member_header(), members=members)

    @unary
    async def MemberAdd(self, r: rpc_pb2.MemberAddRequest, context: Any) -> rpc_pb2.MemberAddResponse:
        added, members = await self.s.member_add(list(r.peerURLs), r.isLearner)
        return rpc_pb2.MemberAddResponse(header=self.s.member_header(), member=added, members=members)

    @unary
    async def MemberRemove(self, r: rpc_pb2.MemberRemoveRequest, context: Any) -> rpc_pb2.MemberRemoveResponse:
        members = await self.s.member_remove(r.ID)
        return rpc_pb2.MemberRemoveResponse(header=self.s.member_header(), members=members)

    @unary
    async def MemberUpdate(self, r: rpc_pb2.MemberUpdateRequest, context: Any) -> rpc_pb2.MemberUpdateResponse:
        members = await self.s.member_update(r)
        return rpc_pb2.MemberUpdateResponse(header=self.s.member_header(), members=members)

    @unary
    async def MemberPromote(self, r: rpc_pb2.MemberPromoteRequest, context: Any) -> rpc_pb2.MemberPromoteResponse:
        members = await self.s.member_promote(r.ID)
        return rpc_pb2.MemberPromoteResponse(header=self.s.member_header(), members=members)
