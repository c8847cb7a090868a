"""Wire the lessor into a member: apply, key-change and leadership hooks, and the expiry loop
whose revokes are ordinary proposals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pyetcd import failpoints
from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.lease import IdGenerator, Lessor, Revoker, min_lease_ttl
from pyetcd.mvcc import KVStore
from pyetcd.storage.backend import Backend

from .apply import Applier
from .config import ServerConfig

Propose = Callable[[internal_pb2.InternalRequest], Awaitable[Any]]


class ServerLeases:
    """The lessor of one member, with its id generator and expiry loop."""

    def __init__(self, cfg: ServerConfig, backend: Backend, kv: KVStore, applier: Applier, member_id: int,
                 propose: Propose) -> None:
        self.lessor = Lessor(backend, min_lease_ttl(cfg.election_ticks, cfg.heartbeat_interval_ms))
        self._kv = kv
        self.lessor.recover_attachments(self._live_keys())
        self.ids = IdGenerator(member_id)
        self.revoker = Revoker(self.lessor, self._revoke)
        self._propose = propose
        self._extend = cfg.election_timeout_ms / 1000.0
        applier.lessor = self.lessor

    def _live_keys(self) -> list[tuple[bytes, int]]:
        return list(self._kv.index.leases())

    def reload(self) -> None:
        self.lessor.reload(self._live_keys())

    def on_leader(self, is_leader: bool) -> None:
        self.lessor.on_leader_change(is_leader, self._extend)
        self.revoker.start()

    async def _revoke(self, lease_id: int) -> object:
        if failpoints.hit("bug.lease_expiry_split") and (lease := self.lessor.lookup(lease_id)) is not None:
            for key in sorted(lease.keys):  # deliberate bug (selftest): an expiry's keys go one revision each
                await self._propose(internal_pb2.InternalRequest(delete_range=rpc_pb2.DeleteRangeRequest(key=key)))
        req = internal_pb2.InternalRequest(lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=lease_id))
        return await self._propose(req)

    async def stop(self) -> None:
        await self.revoker.stop()
