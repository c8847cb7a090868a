"""etcdserverpb.Lease over gRPC: grant and revoke go through raft; keep-alive, time-to-live
and the lease list are answered by the leader's lessor, as in etcd (a follower's server
forwards them; renewals never touch the log)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pyetcd.api import rpc_pb2
from pyetcd.server.etcd_server import EtcdServer

from .errors import stream, unary


class LeaseService:
    def __init__(self, server: EtcdServer) -> None:
        self.s = server

    @unary
    async def LeaseGrant(self, r: rpc_pb2.LeaseGrantRequest, context: Any) -> rpc_pb2.LeaseGrantResponse:
        return await self.s.lease_grant(r)

    @unary
    async def LeaseRevoke(self, r: rpc_pb2.LeaseRevokeRequest, context: Any) -> rpc_pb2.LeaseRevokeResponse:
        return await self.s.lease_revoke(r)

    @unary
    async def LeaseTimeToLive(self, r: rpc_pb2.LeaseTimeToLiveRequest, context: Any) -> rpc_pb2.LeaseTimeToLiveResponse:
        return await self.s.lease_time_to_live(r)

    @unary
    async def LeaseLeases(self, r: rpc_pb2.LeaseLeasesRequest, context: Any) -> rpc_pb2.LeaseLeasesResponse:
        return await self.s.lease_leases(r)

    @stream
    async def LeaseKeepAlive(self, requests: AsyncIterator[rpc_pb2.LeaseKeepAliveRequest],
                             context: Any) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]:
        async for req in requests:
            yield await self.s.lease_renew(req)
