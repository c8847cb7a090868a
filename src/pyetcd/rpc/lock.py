"""v3lockpb.Lock over gRPC: the Mutex recipe run by the server (etcd's v3lock)."""

from __future__ import annotations

from typing import Any

from pyetcd.api import v3lock_pb2
from pyetcd.server import lock
from pyetcd.server.recipes import Recipes

from .errors import unary


class LockService:
    def __init__(self, recipes: Recipes) -> None:
        self.r = recipes

    @unary
    async def Lock(self, req: v3lock_pb2.LockRequest, context: Any) -> v3lock_pb2.LockResponse:
        header, key = await lock.lock(self.r, req.name, req.lease)
        resp = v3lock_pb2.LockResponse(header=header, key=key)
        self.r.s.fill_header(resp.header)
        return resp

    @unary
    async def Unlock(self, req: v3lock_pb2.UnlockRequest, context: Any) -> v3lock_pb2.UnlockResponse:
        resp = v3lock_pb2.UnlockResponse(header=await lock.unlock(self.r, req.key))
        self.r.s.fill_header(resp.header)
        return resp
