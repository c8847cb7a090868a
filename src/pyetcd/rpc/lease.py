"""etcdserverpb.Lease over gRPC: grant and revoke go through raft; keep-alive, time-to-live
and the lease list are answered by the leader's lessor, as in etcd (renewals never touch the log)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pyetcd import errors
from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.server.server import EtcdServer

from .errors import stream, unary
from .header import fill_header


class LeaseService:
    def __init__(self, server: EtcdServer) -> None:
        self.s = server
        self.lessor = server.leases.lessor

    @unary
    async def LeaseGrant(self, r: rpc_pb2.LeaseGrantRequest, context: Any) -> rpc_pb2.LeaseGrantResponse:
        if r.ID == 0:  # no id given: the server chooses one (positive, never 0)
            r.ID = self.s.leases.ids.next()
        await self.s.quota.check(r)
        resp: rpc_pb2.LeaseGrantResponse = await self.s.propose(internal_pb2.InternalRequest(lease_grant=r))
        fill_header(self.s, resp.header)
        return resp

    @unary
    async def LeaseRevoke(self, r: rpc_pb2.LeaseRevokeRequest, context: Any) -> rpc_pb2.LeaseRevokeResponse:
        resp: rpc_pb2.LeaseRevokeResponse = await self.s.propose(internal_pb2.InternalRequest(lease_revoke=r))
        fill_header(self.s, resp.header)
        return resp

    @unary
    async def LeaseTimeToLive(self, r: rpc_pb2.LeaseTimeToLiveRequest, context: Any) -> rpc_pb2.LeaseTimeToLiveResponse:
        self._require_leader()
        resp = rpc_pb2.LeaseTimeToLiveResponse(ID=r.ID)
        lease = self.lessor.lookup(r.ID)
        if lease is None:
            resp.TTL = -1  # etcd answers an unknown lease with TTL -1, not an error
        else:
            resp.TTL = self.lessor.remaining_seconds(lease)
            resp.grantedTTL = lease.ttl
            if r.keys:
                resp.keys.extend(sorted(lease.keys))
        fill_header(self.s, resp.header)
        return resp

    @unary
    async def LeaseLeases(self, r: rpc_pb2.LeaseLeasesRequest, context: Any) -> rpc_pb2.LeaseLeasesResponse:
        resp = rpc_pb2.LeaseLeasesResponse()
        resp.leases.extend(rpc_pb2.LeaseStatus(ID=lease.id) for lease in self.lessor.by_expiry())
        fill_header(self.s, resp.header)
        return resp

    @stream
    async def LeaseKeepAlive(self, requests: AsyncIterator[rpc_pb2.LeaseKeepAliveRequest],
                             context: Any) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]:
        async for req in requests:
            # the header is taken before the renewal, as etcd does: a revoke at revision R
            # is never followed by a keep-alive answer claiming success at a revision > R
            resp = rpc_pb2.LeaseKeepAliveResponse(ID=req.ID, header=self.s.header())
            try:
                resp.TTL = await self.lessor.renew(req.ID)
            except errors.ErrLeaseNotFound:
                resp.TTL = 0
            yield resp

    def _require_leader(self) -> None:
        # renewals and TTLs live in the leader's clock; a follower would forward them to the
        # leader over the peer transport (not built yet), so it answers that it has none
        if not self.s.is_leader:
            raise errors.ErrNoLeader()
