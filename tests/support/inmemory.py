"""Several members in one process over an in-memory transport (design.md's harness beside the
real-process tests): the real server code — node loop, persist, apply, snapshot install — with
raft messages handed from one member's node loop inbox to another's, and links that can be cut.

    async with MemCluster(tmp_path, size=3) as c:
        await c.put(0, b"k", b"v")
        c.isolate(c.leader_index())
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

from pyetcd import errors
from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.raft import Message
from pyetcd.server.config import ServerConfig
from pyetcd.server.etcd_server import EtcdServer


class MemNet:
    """Who is reachable: links between member ids, each direction cut separately."""

    def __init__(self) -> None:
        self.servers: dict[int, EtcdServer] = {}
        self.cut: set[tuple[int, int]] = set()
        self.drops: list[Callable[[Message], bool]] = []  # a message any of these accepts is lost
        self.delivered = 0

    def up(self, frm: int, to: int) -> bool:
        return (frm, to) not in self.cut and to in self.servers


class MemPeers:
    """``pyetcd.server.ports.PeerSender`` for one member, delivering on the event loop."""

    sends_directly = False  # delivered by the loop: a cluster's turns stay on the apply thread

    def __init__(self, net: MemNet) -> None:
        self.net = net
        self.me = 0

    def send(self, messages: list[Message]) -> None:
        loop = asyncio.get_running_loop()
        for m in messages:
            if self.net.up(m.frm, m.to) and not any(drop(m) for drop in self.net.drops):
                self.net.delivered += 1
                loop.call_soon(self.net.servers[m.to].step, m)

    def send_from_thread(self, messages: list[Message], loop: asyncio.AbstractEventLoop) -> None:
        loop.call_soon_threadsafe(self.send, messages)

    def send_snapshot(self, m: Message, store_file: Path, done: Callable[[bool], None]) -> None:
        target = self.net.servers.get(m.to)
        if target is None or not self.net.up(m.frm, m.to) or m.snapshot is None:
            done(False)
            return
        shutil.copyfile(store_file, target.snapshot_receive_path(m.snapshot.metadata.index))
        target.step(m)
        done(True)

    def set_peers(self, peers: dict[int, list[str]]) -> None:
        return None

    def _leader(self, leader: int) -> EtcdServer:
        s = self.net.servers.get(leader)
        if s is None or not self.net.up(self.me, leader):
            raise errors.ErrNoLeader()
        return s

    async def forward_keepalive(self, leader: int, r: rpc_pb2.LeaseKeepAliveRequest
                                ) -> rpc_pb2.LeaseKeepAliveResponse:
        return await self._leader(leader).lease_renew(r)

    async def forward_time_to_live(self, leader: int, r: rpc_pb2.LeaseTimeToLiveRequest
                                   ) -> rpc_pb2.LeaseTimeToLiveResponse:
        return await self._leader(leader).lease_time_to_live(r)

    async def forward_leases(self, leader: int, r: rpc_pb2.LeaseLeasesRequest) -> rpc_pb2.LeaseLeasesResponse:
        return await self._leader(leader).lease_leases(r)

    async def learner_ready(self, leader: int, member_id: int) -> bool:
        return self._leader(leader).learner_ready_here(member_id)

    def active_since(self, member_id: int) -> float | None:
        return 0.0 if self.net.up(self.me, member_id) else None

    async def close(self) -> None:
        return None


class MemCluster:
    def __init__(self, base: Path, size: int = 3, **cfg: object) -> None:
        self.base = base
        self.size = size
        self.cfg = cfg
        self.net = MemNet()
        self.servers: list[EtcdServer | None] = []
        names = [f"m{i}" for i in range(size)]
        self.initial = ",".join(f"{n}=http://127.0.0.1:{40000 + i}" for i, n in enumerate(names))

    def config(self, i: int) -> ServerConfig:
        url = f"http://127.0.0.1:{40000 + i}"
        return ServerConfig(name=f"m{i}", data_dir=self.base / f"m{i}", initial_advertise_peer_urls=[url],
                            listen_peer_urls=[url], initial_cluster=self.initial,
                            initial_cluster_token="mem", heartbeat_interval_ms=20, election_timeout_ms=200,
                            **self.cfg)  # type: ignore[arg-type]

    def _make(self, i: int) -> EtcdServer:
        peers = MemPeers(self.net)
        s = EtcdServer(self.config(i), peers)
        peers.me = s.id
        self.net.servers[s.id] = s
        return s

    async def __aenter__(self) -> MemCluster:
        self.servers = [self._make(i) for i in range(self.size)]
        await asyncio.wait_for(asyncio.gather(*(s.start() for s in self.live())), 20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for s in self.live():
            await s.stop()

    def live(self) -> list[EtcdServer]:
        return [s for s in self.servers if s is not None]

    def server(self, i: int) -> EtcdServer:
        s = self.servers[i]
        assert s is not None, f"m{i} is stopped"
        return s

    async def stop(self, i: int) -> None:
        s = self.server(i)
        del self.net.servers[s.id]
        await s.stop()
        self.servers[i] = None

    async def restart(self, i: int) -> None:
        self.servers[i] = s = self._make(i)
        await asyncio.wait_for(s.start(), 20)

    def isolate(self, i: int) -> None:
        me = self.server(i).id
        for other in self.net.servers:
            if other != me:
                self.net.cut |= {(me, other), (other, me)}

    def heal(self) -> None:
        self.net.cut.clear()
        self.net.drops.clear()

    async def wait_leader(self, timeout: float = 10.0, among: list[int] | None = None) -> int:
        """Index of the member the members in ``among`` (default: all running) agree leads."""
        idx = among if among is not None else [i for i, s in enumerate(self.servers) if s is not None]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            leads = {self.server(i).leader for i in idx}
            if len(leads) == 1 and 0 not in leads:
                lead = leads.pop()
                for i in idx:
                    if self.server(i).id == lead:
                        return i
            await asyncio.sleep(0.02)
        raise AssertionError(f"no agreed leader among {idx}: {[self.server(i).leader for i in idx]}")

    async def put(self, i: int, key: bytes, value: bytes) -> rpc_pb2.PutResponse:
        return await self.server(i).put(rpc_pb2.PutRequest(key=key, value=value))

    async def wait_applied(self, index: int, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(s.loop.applied_index < index for s in self.live()):
            if loop.time() > deadline:
                raise AssertionError(f"applied {[s.loop.applied_index for s in self.live()]} < {index}")
            await asyncio.sleep(0.02)

    def get(self, i: int, key: bytes) -> bytes | None:
        from pyetcd.server import kvops

        reply = kvops.execute_range(self.server(i).kv, rpc_pb2.RangeRequest(key=key))
        kvs = reply.to_message().kvs
        return kvs[0].value if kvs else None


def internal_put(key: bytes, value: bytes) -> internal_pb2.InternalRequest:
    return internal_pb2.InternalRequest(put=rpc_pb2.PutRequest(key=key, value=value))
