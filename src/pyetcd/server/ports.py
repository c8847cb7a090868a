"""What the server needs from outside, as Protocols: the peer transport (implemented in
``pyetcd.transport``, injected by ``pyetcd.cli``). The server never imports the transport."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pyetcd import errors
from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.raft import Message


class PeerSender(Protocol):
    @property
    def sends_directly(self) -> bool:
        """Whether ``send_from_thread`` puts messages on the wire from the calling thread (when
        their stream is open and idle), not later from the event loop: only then may a cluster's
        turn run on the event loop (group_commit.LoneClient.inline) without holding them back."""
        ...

    def send(self, messages: list[Message]) -> None:
        """Queue raft messages to their peers; never blocks (a full queue drops and reports the
        peer unreachable)."""
        ...

    def send_from_thread(self, messages: list[Message], loop: asyncio.AbstractEventLoop) -> None:
        """From any thread (the node loop's turn): what can go at once goes; the rest waits to be
        sent from ``loop``. Messages to one peer keep their order, whichever thread gave them."""
        ...

    def send_snapshot(self, m: Message, store_file: Path, done: Callable[[bool], None]) -> None:
        """Stream a MSG_SNAP with the store file; ``done(ok)`` once the peer installed it or failed."""
        ...

    def set_peers(self, peers: dict[int, list[str]]) -> None:
        """The peers to talk to (member id -> peer URLs), after every membership change."""
        ...

    async def forward_keepalive(self, leader: int, r: rpc_pb2.LeaseKeepAliveRequest
                                ) -> rpc_pb2.LeaseKeepAliveResponse: ...

    async def forward_time_to_live(self, leader: int, r: rpc_pb2.LeaseTimeToLiveRequest
                                   ) -> rpc_pb2.LeaseTimeToLiveResponse: ...

    async def forward_leases(self, leader: int, r: rpc_pb2.LeaseLeasesRequest) -> rpc_pb2.LeaseLeasesResponse: ...

    async def learner_ready(self, leader: int, member_id: int) -> bool:
        """Ask the leader whether a learner caught up (MemberPromote on a follower)."""
        ...

    def active_since(self, member_id: int) -> float | None:
        """Monotonic time since which the peer has been reachable (None: not now)."""
        ...

    async def close(self) -> None: ...


class NoPeers:
    """A single member's transport: nobody to talk to."""

    sends_directly = True

    def send(self, messages: list[Message]) -> None:
        return None

    def send_from_thread(self, messages: list[Message], loop: asyncio.AbstractEventLoop) -> None:
        return None

    def send_snapshot(self, m: Message, store_file: Path, done: Callable[[bool], None]) -> None:
        done(False)

    def set_peers(self, peers: dict[int, list[str]]) -> None:
        return None

    async def forward_keepalive(self, leader: int, r: rpc_pb2.LeaseKeepAliveRequest
                                ) -> rpc_pb2.LeaseKeepAliveResponse:
        raise _no_leader()

    async def forward_time_to_live(self, leader: int, r: rpc_pb2.LeaseTimeToLiveRequest
                                   ) -> rpc_pb2.LeaseTimeToLiveResponse:
        raise _no_leader()

    async def forward_leases(self, leader: int, r: rpc_pb2.LeaseLeasesRequest) -> rpc_pb2.LeaseLeasesResponse:
        raise _no_leader()

    async def learner_ready(self, leader: int, member_id: int) -> bool:
        raise _no_leader()

    def active_since(self, member_id: int) -> float | None:
        return None

    async def close(self) -> None:
        return None


def _no_leader() -> Exception:
    return errors.ErrNoLeader()


class PeerHandler(Protocol):
    """What the server offers the peer transport's service (implemented by EtcdServer)."""

    @property
    def id(self) -> int: ...

    @property
    def cluster_id(self) -> int: ...

    def peer_status(self, member_id: int) -> str | None:
        """None if messages from ``member_id`` are welcome, else why they are refused."""
        ...

    def step(self, m: Message) -> None: ...

    def report_unreachable(self, member_id: int) -> None: ...

    def snapshot_receive_path(self, index: int) -> Path: ...

    def members_snapshot(self) -> tuple[int, list[internal_pb2.MemberRecord]]: ...

    def learner_ready_here(self, member_id: int) -> bool: ...

    @property
    def leader(self) -> int: ...

    async def lease_renew(self, r: rpc_pb2.LeaseKeepAliveRequest) -> rpc_pb2.LeaseKeepAliveResponse: ...

    async def lease_time_to_live(self, r: rpc_pb2.LeaseTimeToLiveRequest) -> rpc_pb2.LeaseTimeToLiveResponse: ...

    async def lease_leases(self, r: rpc_pb2.LeaseLeasesRequest) -> rpc_pb2.LeaseLeasesResponse: ...
