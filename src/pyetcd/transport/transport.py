"""Peer senders and the peer server: one client stream per peer, batched, behind a bounded
queue that drops (and reports the peer unreachable) rather than block the node loop.

The streams and the server run natively where the extensions are built (transport/links.py,
transport/peerserver.py); ``PYETCD_PEER_GRPC=grpcio`` in the environment runs both on grpc.aio
instead (bench/kv.py's A/B). Snapshots, member lists and forwarded lease calls always go through
grpc.aio channels: they are rare, and either server takes them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc

from pyetcd import errors
from pyetcd.api import internal_pb2, peer_pb2, peer_pb2_grpc, rpc_pb2
from pyetcd.gateway.identities import RelayedIdentities
from pyetcd.raft import Message
from pyetcd.server.bootstrap import RemoteCluster
from pyetcd.server.config import ServerConfig
from pyetcd.server.ports import PeerHandler
from pyetcd.tls import ConfigError, TLSInfo, channel_credentials, parse_url, server_credentials

from . import codec, links
from .links import Link, Links, StreamEnded
from .peerserver import NativePeerServer
from .service import REMOVED, PeerService

log = logging.getLogger("pyetcd.transport")

MAX_QUEUED = 4096  # messages per peer waiting to be sent (etcd's streamBufSize)
SNAPSHOT_CHUNK = 1 << 20
FORWARD_TIMEOUT = 5.0
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]
_OPTIONS = [("grpc.max_receive_message_length", 2**31 - 1), ("grpc.max_send_message_length", 2**31 - 1),
            ("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000)]


def native_peers() -> bool:
    """Whether the peer streams and server run natively: built, and not turned off."""
    return links.available() and os.environ.get("PYETCD_PEER_GRPC", "native") != "grpcio"


def _channel(url: str, tls: TLSInfo, peer_cert: bytes | None = None) -> grpc.aio.Channel:
    """A channel to a peer URL; ``peer_cert`` is what --peer-auto-tls trusts (see _auto_tls_cert)."""
    addr = parse_url(url)
    if not addr.secure:
        return grpc.aio.insecure_channel(addr.host_port, options=_OPTIONS)
    if tls.auto_tls:
        creds = grpc.ssl_channel_credentials(root_certificates=peer_cert,
                                             private_key=Path(tls.key_file).read_bytes(),
                                             certificate_chain=Path(tls.cert_file).read_bytes())
        return grpc.aio.secure_channel(addr.host_port, creds, options=_OPTIONS)
    return grpc.aio.secure_channel(addr.host_port, channel_credentials(tls), options=_OPTIONS)


async def _auto_tls_cert(url: str) -> bytes:
    """--peer-auto-tls: the peers' certificates are self-signed and no CA vouches for them; etcd
    skips verification, gRPC cannot, so trust the certificate the peer shows (trust on first use)."""
    addr = parse_url(url)
    host, port = addr.host_port.rsplit(":", 1)

    def fetch() -> bytes:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])  # a gRPC server answers only HTTP/2 clients
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0) as sock, \
                ctx.wrap_socket(sock, server_hostname=host.strip("[]")) as tls_sock:
            der = tls_sock.getpeercert(binary_form=True)
        if der is None:
            raise OSError(f"{url} showed no certificate")
        return ssl.DER_cert_to_PEM_cert(der).encode()

    return await asyncio.get_running_loop().run_in_executor(None, fetch)


async def open_channel(url: str, tls: TLSInfo) -> grpc.aio.Channel:
    """A channel to a peer URL with our peer TLS settings (fetching the peer's certificate first
    under --peer-auto-tls)."""
    pem = await _auto_tls_cert(url) if tls.auto_tls and parse_url(url).secure else None
    return _channel(url, tls, pem)


class _Peer:
    """One remote member: its channel, its outgoing message stream, and whether it is reachable.

    Messages to a peer leave in the order they were given, from whichever thread. They go onto
    an open native stream at once when nothing waits before them (the node loop's turn thread
    does that itself, ``send_from_thread``, without a trip through the event loop); otherwise
    they join the queue, which the stream's task sends in order. ``_lock`` guards the queue and
    the link, and every send that bypasses the queue happens under it."""

    def __init__(self, transport: PeerTransport, member_id: int, urls: list[str]) -> None:
        self.t = transport
        self.id = member_id
        self.urls = urls
        self.queue: deque[Message] = deque()
        self.wake = asyncio.Event()
        self._lock = threading.Lock()
        self.active_since: float | None = None
        self.channel: grpc.aio.Channel | None = None
        self.stub: peer_pb2_grpc.PeerStub | None = None
        self.link: Link | None = None  # the native stream, while it is open
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name=f"peer-{member_id:x}")]
        if transport.links is None:  # grpc.aio's stream: the channel's state says whether it is up
            self._tasks.append(loop.create_task(self._watch(), name=f"peer-watch-{member_id:x}"))
        self._connected = asyncio.Event()

    async def _connect(self) -> peer_pb2_grpc.PeerStub:
        if self.stub is None:
            self.channel = await open_channel(self.urls[0], self.t.tls)
            self.stub = peer_pb2_grpc.PeerStub(self.channel)
            self._connected.set()
        return self.stub

    def send_from_thread(self, messages: list[Message], loop: asyncio.AbstractEventLoop) -> None:
        """From any thread: ``_send_or_queue``, the event loop woken if they were queued."""
        dropped = self._send_or_queue(messages)
        if dropped is not None:
            loop.call_soon_threadsafe(self._queued, dropped)

    def enqueue(self, messages: list[Message]) -> None:
        """On the event loop: ``_send_or_queue``."""
        dropped = self._send_or_queue(messages)
        if dropped is not None:
            self._queued(dropped)

    def _send_or_queue(self, messages: list[Message]) -> bool | None:
        """Onto the open stream when it takes them and nothing waits before them (None); else
        into the queue (whether some did not fit and were dropped)."""
        data = self._encode(messages) if self.link is not None and not self.queue else b""
        with self._lock:
            link = self.link
            if link is not None and data and not self.queue and link.takes(len(data)):
                link.send(data)
                return None
            return self._queue(messages)

    def _queue(self, messages: list[Message]) -> bool:
        """Under the lock: queue them, dropping what does not fit (True if any was dropped)."""
        for i, m in enumerate(messages):
            if len(self.queue) >= MAX_QUEUED:
                log.debug("dropped %d messages to %x: sending buffer is full", len(messages) - i, self.id)
                return True
            self.queue.append(m)
        return False

    def _queued(self, dropped: bool) -> None:
        """On the event loop, after queueing: a full buffer reports the peer unreachable."""
        if dropped:
            self.t.unreachable(self.id)
        self.wake.set()

    def _batch(self, messages: list[Message]) -> peer_pb2.MessageBatch:
        return peer_pb2.MessageBatch(header=self.t.header(self.id), messages=[codec.encode(m) for m in messages])

    def _encode(self, messages: list[Message]) -> bytes:
        return self._batch(messages).SerializeToString()  # type: ignore[no-any-return]

    def _pop_queue(self) -> list[Message]:
        """Under the lock: every queued message, oldest first, leaving the queue empty."""
        msgs = list(self.queue)
        self.queue.clear()
        return msgs

    async def _batches(self) -> AsyncIterator[peer_pb2.MessageBatch]:
        while True:
            if not self.queue:
                self.wake.clear()
                await self.wake.wait()
            with self._lock:
                msgs = self._pop_queue()
            yield self._batch(msgs)

    async def _stream(self, links: Links) -> None:
        """The queue's messages on a native stream, until it ends (raises StreamEnded)."""
        link = await links.open(self.urls[0])
        link.ready.add_done_callback(self._on_ready)
        link.ended.add_done_callback(lambda _: self.wake.set())
        with self._lock:
            self.link = link
        try:
            while not link.ended.done():
                if self.queue:
                    with self._lock:  # sent under the lock: no direct send can slip in between
                        link.send(self._encode(self._pop_queue()))
                    await link.wait_writable()
                    continue
                self.wake.clear()
                await self.wake.wait()
            raise link.ended.result()
        finally:
            with self._lock:
                self.link = None
            self.active_since = None
            link.close()

    def _on_ready(self, ready: asyncio.Future[None]) -> None:
        if not ready.cancelled() and self.link is not None:
            self.active_since = time.monotonic()

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                if self.t.links is not None:
                    await self._stream(self.t.links)
                else:
                    await (await self._connect()).Stream(self._batches())
            except asyncio.CancelledError:
                raise
            except StreamEnded as e:
                if e.code == FAILED_PRECONDITION:
                    self.t.refused(self.id, e.message)
                else:
                    log.debug("stream to %x broke: %s", self.id, e)
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    self.t.refused(self.id, e.details() or "")
                elif e.code() != grpc.StatusCode.CANCELLED:
                    log.debug("stream to %x broke: %s", self.id, e.code().name)
            except OSError as e:  # no connection (TimeoutError too), or --peer-auto-tls found no certificate
                log.debug("cannot reach %x: %s", self.id, e)
            except Exception:
                log.warning("stream to %x failed", self.id, exc_info=True)
            self.t.unreachable(self.id)
            await asyncio.sleep(backoff)
            backoff = min(1.0, backoff * 2)

    async def _watch(self) -> None:
        """Track whether the connection is up: etcd's ActiveSince, for --strict-reconfig-check."""
        await self._connected.wait()
        assert self.channel is not None
        state = self.channel.get_state(try_to_connect=True)
        while True:
            if state == grpc.ChannelConnectivity.READY:
                if self.active_since is None:
                    self.active_since = time.monotonic()
            else:
                self.active_since = None
            await self.channel.wait_for_state_change(state)
            state = self.channel.get_state(try_to_connect=True)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.channel is not None:
            await self.channel.close(None)


class PeerTransport:
    """``pyetcd.server.ports.PeerSender`` over gRPC."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.tls = cfg.peer_tls
        self.peers: dict[int, _Peer] = {}
        self.handler: PeerHandler | None = None
        self.on_removed: Callable[[str], None] = lambda why: None
        self.links: Links | None = None  # the native streams (set_peers opens them)
        self.native = native_peers()  # the streams and the server on the native transport, else grpc.aio's
        self._server: grpc.aio.Server | NativePeerServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def sends_directly(self) -> bool:
        """The native streams take a turn's messages from its own thread; grpc.aio's only from the loop."""
        return self.native

    def attach(self, handler: PeerHandler) -> None:
        self.handler = handler

    def header(self, to: int) -> peer_pb2.PeerHeader:
        h = self.handler
        return peer_pb2.PeerHeader(cluster_id=h.cluster_id if h else 0, to=to, **{"from": h.id if h else 0})

    # ---- the peer server -------------------------------------------------------------
    async def serve(self) -> None:
        assert self.handler is not None
        for url in self.cfg.listen_peer_urls:
            if parse_url(url).secure and self.tls.empty:
                raise ConfigError(f"{url} is https but no --peer-cert-file/--peer-key-file "
                                  "(or --peer-auto-tls) was given")
        if self.native:
            identities = RelayedIdentities()
            native = NativePeerServer(self.cfg.listen_peer_urls, self.tls,
                                      PeerService(self.handler, self.tls.allowed_cn, identities.of), identities)
            await native.start()
            self._server = native
            log.info("serving peer traffic on %s", ",".join(self.cfg.listen_peer_urls))
            return
        server = grpc.aio.server(options=_OPTIONS)
        service = PeerService(self.handler, self.tls.allowed_cn)
        peer_pb2_grpc.add_PeerServicer_to_server(service, server)  # type: ignore[no-untyped-call]
        creds = None
        for url in self.cfg.listen_peer_urls:
            addr = parse_url(url)
            if addr.secure:
                creds = creds or server_credentials(self.tls)
                port = server.add_secure_port(addr.host_port, creds)
            else:
                port = server.add_insecure_port(addr.host_port)
            if port == 0:
                raise ConfigError(f"cannot listen on peer URL {url}: address already in use or not available")
        await server.start()
        self._server = server
        log.info("serving peer traffic on %s", ",".join(self.cfg.listen_peer_urls))

    # ---- PeerSender ------------------------------------------------------------------
    def set_peers(self, peers: dict[int, list[str]]) -> None:
        if self.links is None and peers and self.native:
            self.links = Links(self.tls)
        for mid in list(self.peers):
            if mid not in peers or self.peers[mid].urls != peers[mid]:
                self._spawn(self.peers.pop(mid).close())
        for mid, urls in peers.items():
            if mid not in self.peers and urls:
                self.peers[mid] = _Peer(self, mid, urls)

    def send(self, messages: list[Message]) -> None:
        for peer, msgs in self._by_peer(messages):
            peer.enqueue(msgs)

    def send_from_thread(self, messages: list[Message], loop: asyncio.AbstractEventLoop) -> None:
        for peer, msgs in self._by_peer(messages):
            peer.send_from_thread(msgs, loop)

    def _by_peer(self, messages: list[Message]) -> list[tuple[_Peer, list[Message]]]:
        by_id: dict[int, list[Message]] = {}
        for m in messages:
            by_id.setdefault(m.to, []).append(m)
        return [(peer, msgs) for to, msgs in by_id.items() if (peer := self.peers.get(to)) is not None]

    def send_snapshot(self, m: Message, store_file: Path, done: Callable[[bool], None]) -> None:
        self._spawn(self._send_snapshot(m, store_file, done))

    async def _send_snapshot(self, m: Message, store_file: Path, done: Callable[[bool], None]) -> None:
        peer = self.peers.get(m.to)
        if peer is None:
            done(False)
            return
        size = store_file.stat().st_size

        async def chunks() -> AsyncIterator[peer_pb2.SnapshotChunk]:
            yield peer_pb2.SnapshotChunk(header=self.header(m.to), message=codec.encode(m), total_size=size)
            digest = hashlib.sha256()
            with store_file.open("rb") as f:
                while data := f.read(SNAPSHOT_CHUNK):
                    digest.update(data)
                    yield peer_pb2.SnapshotChunk(data=data)
            yield peer_pb2.SnapshotChunk(sha256=digest.digest())

        try:
            ack = await (await peer._connect()).Snapshot(chunks())
            done(bool(ack.installed))
        except Exception as e:
            log.warning("streaming snapshot to %x failed: %s", m.to, e)
            done(False)

    def active_since(self, member_id: int) -> float | None:
        peer = self.peers.get(member_id)
        return peer.active_since if peer is not None else None

    async def forward_keepalive(self, leader: int, r: rpc_pb2.LeaseKeepAliveRequest
                                ) -> rpc_pb2.LeaseKeepAliveResponse:
        req = peer_pb2.LeaseKeepAliveForward(header=self.header(leader), request=r)
        return await self._forward(leader, lambda s: s.LeaseKeepAlive(req, timeout=FORWARD_TIMEOUT))  # type: ignore[no-any-return]

    async def forward_time_to_live(self, leader: int, r: rpc_pb2.LeaseTimeToLiveRequest
                                   ) -> rpc_pb2.LeaseTimeToLiveResponse:
        req = peer_pb2.LeaseTimeToLiveForward(header=self.header(leader), request=r)
        return await self._forward(leader, lambda s: s.LeaseTimeToLive(req, timeout=FORWARD_TIMEOUT))  # type: ignore[no-any-return]

    async def forward_leases(self, leader: int, r: rpc_pb2.LeaseLeasesRequest) -> rpc_pb2.LeaseLeasesResponse:
        req = peer_pb2.LeaseLeasesForward(header=self.header(leader), request=r)
        return await self._forward(leader, lambda s: s.LeaseLeases(req, timeout=FORWARD_TIMEOUT))  # type: ignore[no-any-return]

    async def learner_ready(self, leader: int, member_id: int) -> bool:
        req = peer_pb2.LearnerReadyRequest(header=self.header(leader), member_id=member_id)
        resp = await self._forward(leader, lambda s: s.LearnerReady(req, timeout=FORWARD_TIMEOUT))
        if not resp.is_leader:
            raise errors.ErrNotLeader()
        return bool(resp.ready)

    async def _forward(self, leader: int, call: Callable[[peer_pb2_grpc.PeerStub], Any]) -> Any:
        """A call on the leader; its etcd error comes back as the same error."""
        peer = self.peers.get(leader)
        if peer is None:
            raise errors.ErrNoLeader()
        try:
            return await call(await peer._connect())
        except grpc.aio.AioRpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise errors.ErrTimeout() from e
            err = errors.EtcdError(e.details())
            err.code = e.code().name
            raise err from e

    # ---- reports ---------------------------------------------------------------------
    def unreachable(self, member_id: int) -> None:
        if self.handler is not None:
            self.handler.report_unreachable(member_id)

    def refused(self, member_id: int, reason: str) -> None:
        if REMOVED in reason:
            log.error("member %x says: %s", member_id, reason)
            self.on_removed(reason)
        else:
            log.warning("member %x refused our messages: %s", member_id, reason)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for peer in list(self.peers.values()):
            await peer.close()
        self.peers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.links is not None:
            self.links.close()
            self.links = None
        if self._server is not None:
            await self._server.stop(grace=0.5)


async def fetch_remote_cluster(cfg: ServerConfig, timeout: float = 30.0) -> RemoteCluster:
    """Ask the other members of --initial-cluster for the cluster's member list (joining with
    --initial-cluster-state=existing), as etcd's GetClusterFromRemotePeers does."""
    urls = [u for name, us in cfg.initial_members().items() if name != cfg.name for u in us]
    if not urls:
        raise ConfigError("--initial-cluster-state=existing needs the other members in --initial-cluster")
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for url in urls:
            try:
                channel = await open_channel(url, cfg.peer_tls)
            except OSError as e:
                last = f"{url}: {e}"
                continue
            try:
                resp = await peer_pb2_grpc.PeerStub(channel).Members(peer_pb2.MembersRequest(), timeout=2.0)
                return RemoteCluster(resp.cluster_id, [
                    internal_pb2.MemberRecord(ID=m.ID, name=m.name, peer_urls=list(m.peer_urls),
                                              client_urls=list(m.client_urls), is_learner=m.is_learner)
                    for m in resp.members])
            except (grpc.aio.AioRpcError, OSError) as e:
                last = f"{url}: {e}"
            finally:
                with contextlib.suppress(Exception):
                    await channel.close(None)
        await asyncio.sleep(0.5)
    raise ConfigError(f"could not retrieve the cluster's member list from {', '.join(urls)} ({last})")
