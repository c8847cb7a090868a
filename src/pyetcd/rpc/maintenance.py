"""etcdserverpb.Maintenance over gRPC: status, alarms, hashes, snapshots, defragmentation."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pyetcd import errors
from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.server.server import EtcdServer
from pyetcd.server.storehash import store_hash

from .errors import stream, unary


class MaintenanceService:
    def __init__(self, server: EtcdServer) -> None:
        self.s = server

    @unary
    async def Status(self, r: rpc_pb2.StatusRequest, context: Any) -> rpc_pb2.StatusResponse:
        st = self.s.status()
        sizes = self.s.backend.sizes()
        return rpc_pb2.StatusResponse(
            header=self.s.header(), version=self.s.version, dbSize=sizes.db_size, dbSizeInUse=sizes.db_size_in_use,
            leader=st.leader, raftIndex=st.raft_index, raftTerm=st.raft_term, raftAppliedIndex=st.applied_index,
            isLearner=False, errors=[_alarm_text(a) for a in self.s.alarms.members()],
        )

    @unary
    async def HashKV(self, r: rpc_pb2.HashKVRequest, context: Any) -> rpc_pb2.HashKVResponse:
        h, rev, compact = self.s.kv.hash_kv(r.revision)
        resp = rpc_pb2.HashKVResponse(hash=h, compact_revision=compact)
        resp.header.CopyFrom(self.s.header(rev))
        return resp

    @unary
    async def Hash(self, r: rpc_pb2.HashRequest, context: Any) -> rpc_pb2.HashResponse:
        # on the event loop, like HashKV: no defragmentation can swap the file meanwhile
        return rpc_pb2.HashResponse(header=self.s.header(), hash=store_hash(self.s.backend))

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
        # every alarm request, GET included, goes through raft as in etcd
        resp: rpc_pb2.AlarmResponse = await self.s.propose(internal_pb2.InternalRequest(alarm=r))
        resp.header.CopyFrom(self.s.header())
        return resp


_ALARM_ACTIONS = frozenset(rpc_pb2.AlarmRequest.AlarmAction.values())
_ALARM_NAMES = {v: k for k, v in rpc_pb2.AlarmType.items()}


def _alarm_text(a: rpc_pb2.AlarmMember) -> str:
    """etcd's AlarmMember.String(), as Status lists raised alarms in ``errors`` (an alarm type
    etcd has no name for is printed as its number, as gogo's EnumName does)."""
    return f"memberID:{a.memberID} alarm:{_ALARM_NAMES.get(a.alarm, a.alarm)} "


SNAPSHOT_CHUNK = 32 * 1024  # etcd's snapshot send buffer


async def snapshot_stream(s: EtcdServer) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
    """The backend as etcd streams it: chunks counting down ``remaining_bytes``, then the
    SHA-256 of everything sent, which restore tools check (etcdctl and pyetcdutl)."""
    with tempfile.TemporaryDirectory(prefix="pyetcd-snapshot-") as tmp:
        path = Path(tmp) / "snapshot.db"
        await asyncio.get_running_loop().run_in_executor(None, s.backend.snapshot_to, path)
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
