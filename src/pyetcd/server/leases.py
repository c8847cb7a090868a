"""Wire the lessor into a server: apply, key-change and leadership hooks, and the expiry loop
whose revokes are ordinary proposals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.lease import IdGenerator, Lessor, Revoker, min_lease_ttl

if TYPE_CHECKING:
    from .server import EtcdServer


class ServerLeases:
    """The lessor of one server, with its id generator and expiry loop."""

    def __init__(self, s: EtcdServer) -> None:
        cfg = s.cfg
        election_ticks = max(2, cfg.election_timeout_ms // cfg.heartbeat_interval_ms)
        self.lessor = Lessor(s.backend, min_lease_ttl(election_ticks, cfg.heartbeat_interval_ms))
        self.lessor.recover_attachments((key, ki.lease) for key, ki in s.kv.index.items() if ki.alive and ki.lease)
        self.ids = IdGenerator(s.id)
        self.revoker = Revoker(self.lessor, self._revoke)
        self._server = s
        self._extend = cfg.election_timeout_ms / 1000.0
        s.applier.lessor = self.lessor
        s.change_listeners.append(self.lessor.on_changes)
        s.leader_listeners.append(self._on_leader)

    def _on_leader(self, is_leader: bool) -> None:
        self.lessor.on_leader_change(is_leader, self._extend)
        self.revoker.start()

    async def _revoke(self, lease_id: int) -> object:
        req = internal_pb2.InternalRequest(lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=lease_id))
        return await self._server.propose(req)

    async def stop(self) -> None:
        await self.revoker.stop()
