"""etcdserverpb.Maintenance over gRPC: status, alarms, hashes, defragmentation, snapshots, leadership."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pyetcd import errors
from pyetcd.api import rpc_pb2
from pyetcd.server.etcd_server import EtcdServer

from .errors import stream, unary


class MaintenanceService:
    def __init__(self, server: EtcdServer) -> None:
        self.s = server

    @unary
    async def Status(self, r: rpc_pb2.StatusRequest, context: Any) -> rpc_pb2.StatusResponse:
        st = self.s.status()
        return rpc_pb2.StatusResponse(
            header=self.s.header(), version=self.s.version, dbSize=st.db_size, dbSizeInUse=st.db_size_in_use,
            leader=st.leader, raftIndex=st.raft_index, raftTerm=st.raft_term, raftAppliedIndex=st.applied_index,
            isLearner=st.is_learner, errors=st.errors,
        )

    @unary
    async def HashKV(self, r: rpc_pb2.HashKVRequest, context: Any) -> rpc_pb2.HashKVResponse:
        h, rev, compact = self.s.hash_kv(r.revision)
        resp = rpc_pb2.HashKVResponse(hash=h, compact_revision=compact)
        resp.header.CopyFrom(self.s.header(rev))
        return resp

    @unary
    async def Hash(self, r: rpc_pb2.HashRequest, context: Any) -> rpc_pb2.HashResponse:
        return rpc_pb2.HashResponse(header=self.s.header(), hash=self.s.store_hash())

    @stream
    async def Snapshot(self, r: rpc_pb2.SnapshotRequest, context: Any) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
        async for resp in snapshot_stream(self.s):
            yield resp

    @unary
    async def Defragment(self, r: rpc_pb2.DefragmentRequest, context: Any) -> rpc_pb2.DefragmentResponse:
        await self.s.defragment()
        return rpc_pb2.DefragmentResponse(header=self.s.header())

    @unary
    async def Alarm(self, r: rpc_pb2.AlarmRequest, context: Any) -> rpc_pb2.AlarmResponse:
        if r.action not in _ALARM_ACTIONS:
            raise errors.ErrInvalidAlarmAction()
        return await self.s.alarm(r)

    @unary
    async def MoveLeader(self, r: rpc_pb2.MoveLeaderRequest, context: Any) -> rpc_pb2.MoveLeaderResponse:
        await self.s.move_leader(r.targetID)
        return rpc_pb2.MoveLeaderResponse(header=self.s.header())


_ALARM_ACTIONS = frozenset(rpc_pb2.AlarmRequest.AlarmAction.values())


SNAPSHOT_CHUNK = 32 * 1024  # etcd's snapshot send buffer


async def snapshot_stream(s: EtcdServer) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
    """The backend as etcd's bbolt file, streamed as etcd does: chunks counting down ``remaining_bytes``, then the
    SHA-256 of everything sent, which restore tools check (etcdctl and pyetcdutl)."""
    # beside the store, not in /tmp: a tmpfs there would hold the whole copy in memory
    with tempfile.TemporaryDirectory(prefix="snapshot-", dir=s.scratch_dir) as tmp:
        path = Path(tmp) / "snapshot.db"
        await asyncio.get_running_loop().run_in_executor(None, s.snapshot_to, path)
        size = path.stat().st_size
        digest = hashlib.sha256()
        sent = 0
        with path.open("rb") as f:
            while chunk := f.read(SNAPSHOT_CHUNK):
                sent += len(chunk)
                digest.update(chunk)
                resp = rpc_pb2.SnapshotResponse(remaining_bytes=size - sent, blob=chunk)
                if sent == len(chunk):
                    resp.header.CopyFrom(s.header())
                yield resp
    yield rpc_pb2.SnapshotResponse(remaining_bytes=0, blob=digest.digest())
