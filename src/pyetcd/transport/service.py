"""The peer gRPC service: what other members send us.

Every call is checked before anything reaches the server: the peer certificate's CN (with
--peer-cert-allowed-cn), the cluster id (a member started with another --initial-cluster-token
belongs to another cluster), the addressee, and the sender (a removed member is told so and
stops). Refusals are logged once per sender and reason, not once per message.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc

from pyetcd import errors
from pyetcd.api import peer_pb2, rpc_pb2
from pyetcd.rpc.callcontext import CallAborted
from pyetcd.server.ports import PeerHandler

from . import codec

log = logging.getLogger("pyetcd.transport")
REMOVED = "the member has been permanently removed from the cluster"
_LOG_EVERY = 10.0


def _grpc_identity(context: Any) -> Mapping[str, list[bytes]]:
    return context.auth_context() or {}  # type: ignore[no-any-return]


class PeerService:
    """``identify``: a call's peer certificate, as grpc's auth context keys it (grpc's own when
    grpc ended TLS; gateway/identities.py's when a pump did)."""

    def __init__(self, handler: PeerHandler, allowed_cn: str = "",
                 identify: Callable[[Any], Mapping[str, list[bytes]]] = _grpc_identity) -> None:
        self.h = handler
        self.allowed_cn = allowed_cn
        self._identify = identify
        self._logged: dict[tuple[int, str], float] = {}

    def _refusal(self, header: peer_pb2.PeerHeader, context: Any) -> str | None:
        if self.allowed_cn:
            cns = [c.decode() for c in self._identify(context).get("x509_common_name", [])]
            if self.allowed_cn not in cns:
                return f"peer certificate CN {cns or 'none'} is not the allowed CN {self.allowed_cn!r}"
        if header.cluster_id != self.h.cluster_id:
            return (f"cluster ID mismatch: the sender belongs to cluster {header.cluster_id:x}, this member to "
                    f"{self.h.cluster_id:x} (another --initial-cluster-token?)")
        if header.to and header.to != self.h.id:
            return f"message for member {header.to:x} reached member {self.h.id:x}"
        return self.h.peer_status(getattr(header, "from"))

    def _logged_refusal(self, header: peer_pb2.PeerHeader, context: Any) -> str | None:
        """Why this peer's traffic is refused (logged once per sender, reason and _LOG_EVERY), or None."""
        reason = self._refusal(header, context)
        if reason is None:
            return None
        sender = getattr(header, "from")
        key = (sender, reason)
        now = time.monotonic()
        if now - self._logged.get(key, 0.0) > _LOG_EVERY:
            self._logged[key] = now
            log.warning("refused peer traffic from member %x (%s): %s", sender, context.peer(), reason)
        return reason

    async def _check(self, header: peer_pb2.PeerHeader, context: Any) -> None:
        reason = self._logged_refusal(header, context)
        if reason is not None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, reason)

    def stream_sink(self, context: Any) -> _MessageSink:
        """``Stream`` as rpc.service.StreamSink: each batch stepped in the transport's callback."""
        return _MessageSink(self, context)

    async def Stream(self, requests: AsyncIterator[peer_pb2.MessageBatch], context: Any) -> peer_pb2.StreamAck:
        """grpc.aio's way in (the native server runs ``stream_sink``)."""
        sink = self.stream_sink(context)
        async for batch in requests:
            try:
                sink.message(batch)
            except CallAborted as e:
                await context.abort(e.status, e.details)
        return sink.reply()

    async def Snapshot(self, requests: AsyncIterator[peer_pb2.SnapshotChunk], context: Any) -> peer_pb2.SnapshotAck:
        """Receive the leader's store into the file the installer will swap in, checked by its
        SHA-256 and size, before the core sees the snapshot message."""
        it = aiter(requests)
        first = await anext(it)
        await self._check(first.header, context)
        m = codec.decode(first.message)
        if m.snapshot is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "snapshot stream without a snapshot message")
            raise AssertionError("unreachable")
        path = self.h.snapshot_receive_path(m.snapshot.metadata.index)
        part = path.with_suffix(".part")
        digest = hashlib.sha256()
        received, expected = 0, b""
        with part.open("wb") as f:
            async for chunk in it:
                if chunk.sha256:
                    expected = chunk.sha256
                    break
                f.write(chunk.data)
                digest.update(chunk.data)
                received += len(chunk.data)
            f.flush()
            os.fsync(f.fileno())
        if expected != digest.digest() or received != first.total_size:
            part.unlink(missing_ok=True)
            why = ("cut short" if not expected else "SHA-256 mismatch") + f" ({received} of {first.total_size} bytes)"
            log.error("discarded snapshot %d from member %x: %s", m.snapshot.metadata.index, m.frm, why)
            await context.abort(grpc.StatusCode.DATA_LOSS, f"snapshot rejected: {why}")
        part.replace(path)
        log.info("received snapshot %d from member %x (%d bytes)", m.snapshot.metadata.index, m.frm, received)
        self.h.step(m)
        return peer_pb2.SnapshotAck(installed=True)

    async def Members(self, r: peer_pb2.MembersRequest, context: Any) -> peer_pb2.MembersResponse:
        cid, records = self.h.members_snapshot()
        resp = peer_pb2.MembersResponse(cluster_id=cid, leader=self.h.leader)
        resp.members.extend(peer_pb2.MemberInfo(ID=m.ID, name=m.name, peer_urls=list(m.peer_urls),
                                                client_urls=list(m.client_urls), is_learner=m.is_learner)
                            for m in records)
        return resp

    async def LearnerReady(self, r: peer_pb2.LearnerReadyRequest, context: Any) -> peer_pb2.LearnerReadyResponse:
        await self._check(r.header, context)
        try:
            return peer_pb2.LearnerReadyResponse(ready=self.h.learner_ready_here(r.member_id), is_leader=True)
        except errors.ErrNotLeader:
            return peer_pb2.LearnerReadyResponse(is_leader=False)

    async def LeaseKeepAlive(self, r: peer_pb2.LeaseKeepAliveForward, context: Any
                             ) -> rpc_pb2.LeaseKeepAliveResponse:
        await self._check(r.header, context)
        return await _answer(self.h.lease_renew(r.request), context)

    async def LeaseTimeToLive(self, r: peer_pb2.LeaseTimeToLiveForward, context: Any
                              ) -> rpc_pb2.LeaseTimeToLiveResponse:
        await self._check(r.header, context)
        return await _answer(self.h.lease_time_to_live(r.request), context)

    async def LeaseLeases(self, r: peer_pb2.LeaseLeasesForward, context: Any) -> rpc_pb2.LeaseLeasesResponse:
        await self._check(r.header, context)
        return await _answer(self.h.lease_leases(r.request), context)


async def _answer(call: Any, context: Any) -> Any:
    """A forwarded call's answer, or its etcd error with the same code and message."""
    try:
        return await call
    except errors.EtcdError as e:
        await context.abort(getattr(grpc.StatusCode, e.code, grpc.StatusCode.UNKNOWN), e.message)


class _MessageSink:
    """One peer's raft message stream: its sender checked on its first batch (and on any batch
    that carries a header again), every message decoded and stepped."""

    def __init__(self, service: PeerService, context: Any) -> None:
        self.service = service
        self.context = context
        self.checked = False

    def message(self, batch: peer_pb2.MessageBatch) -> None:
        if not self.checked or batch.HasField("header"):
            reason = self.service._logged_refusal(batch.header, self.context)
            if reason is not None:
                raise CallAborted(grpc.StatusCode.FAILED_PRECONDITION, reason)
            self.checked = True
        step = self.service.h.step
        for pm in batch.messages:
            try:
                m = codec.decode(pm)
            except ValueError:
                log.warning("dropping a malformed raft message from member %x", getattr(pm, "from"))
                continue
            step(m)

    def reply(self) -> peer_pb2.StreamAck:
        return peer_pb2.StreamAck()
