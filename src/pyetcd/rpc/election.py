"""v3electionpb.Election over gRPC: the Election recipe run by the server (etcd's v3election)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pyetcd.api import v3election_pb2 as epb
from pyetcd.server import election
from pyetcd.server.recipes import Recipes

from .errors import stream, unary


def _resumed(req: epb.ProclaimRequest | epb.ResignRequest) -> election.LeaderKey:
    """The leader a Proclaim or Resign speaks for (etcd's ResumeElection)."""
    if not req.HasField("leader"):
        raise election.ErrMissingLeaderKey()
    k = req.leader
    return election.LeaderKey(k.name, k.key, k.rev, k.lease)


class ElectionService:
    def __init__(self, recipes: Recipes) -> None:
        self.r = recipes

    @unary
    async def Campaign(self, req: epb.CampaignRequest, context: Any) -> epb.CampaignResponse:
        header, lk = await election.campaign(self.r, req.name, req.lease, req.value)
        resp = epb.CampaignResponse(header=header, leader=epb.LeaderKey(name=lk.name, key=lk.key, rev=lk.rev,
                                                                       lease=lk.lease))
        self.r.s.fill_header(resp.header)
        return resp

    @unary
    async def Proclaim(self, req: epb.ProclaimRequest, context: Any) -> epb.ProclaimResponse:
        header = await election.proclaim(self.r, _resumed(req), req.value)
        return epb.ProclaimResponse(header=self.r.s.fill_header(header))

    @unary
    async def Resign(self, req: epb.ResignRequest, context: Any) -> epb.ResignResponse:
        header = await election.resign(self.r, _resumed(req))
        return epb.ResignResponse(header=self.r.s.fill_header(header))

    @unary
    async def Leader(self, req: epb.LeaderRequest, context: Any) -> epb.LeaderResponse:
        got = await election.leader(self.r, req.name)
        resp = epb.LeaderResponse(header=got.header, kv=got.kvs[0])
        self.r.s.fill_header(resp.header)
        return resp

    @stream
    async def Observe(self, req: epb.LeaderRequest, context: Any) -> AsyncIterator[epb.LeaderResponse]:
        async for header, kv in election.observe(self.r, req.name):
            resp = epb.LeaderResponse(header=header, kv=kv)
            self.r.s.fill_header(resp.header)
            yield resp
