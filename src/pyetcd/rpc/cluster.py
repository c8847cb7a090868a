"""etcdserverpb.Cluster over gRPC: the member list and membership changes."""

from __future__ import annotations

from typing import Any

from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.raft import ConfChangeType
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

    @unary
    async def MemberAdd(self, r: rpc_pb2.MemberAddRequest, context: Any) -> rpc_pb2.MemberAddResponse:
        rec = self.s.members.new_member(list(r.peerURLs), r.isLearner)
        kind = ConfChangeType.ADD_LEARNER_NODE if r.isLearner else ConfChangeType.ADD_NODE
        members = await self.s.change_membership(kind, rec.ID, rec)
        added = rpc_pb2.Member(ID=rec.ID, peerURLs=list(rec.peer_urls), isLearner=rec.is_learner)
        return rpc_pb2.MemberAddResponse(header=self.s.header(), member=added, members=members)

    @unary
    async def MemberRemove(self, r: rpc_pb2.MemberRemoveRequest, context: Any) -> rpc_pb2.MemberRemoveResponse:
        self.s.members.check_remove(r.ID, self.s.id)
        members = await self.s.change_membership(ConfChangeType.REMOVE_NODE, r.ID)
        return rpc_pb2.MemberRemoveResponse(header=self.s.header(), members=members)

    @unary
    async def MemberUpdate(self, r: rpc_pb2.MemberUpdateRequest, context: Any) -> rpc_pb2.MemberUpdateResponse:
        self.s.members.check_update(r)
        resp: rpc_pb2.MemberUpdateResponse = await self.s.propose(internal_pb2.InternalRequest(member_update=r))
        resp.header.CopyFrom(self.s.header())
        return resp

    @unary
    async def MemberPromote(self, r: rpc_pb2.MemberPromoteRequest, context: Any) -> rpc_pb2.MemberPromoteResponse:
        self.s.members.check_promote(r.ID)  # raises until a learner can catch up (peer transport)
        members = await self.s.change_membership(ConfChangeType.ADD_NODE, r.ID)
        return rpc_pb2.MemberPromoteResponse(header=self.s.header(), members=members)
