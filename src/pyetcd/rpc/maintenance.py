"""etcdserverpb.Maintenance over gRPC: status and alarms."""

from __future__ import annotations

from typing import Any

from pyetcd.api import rpc_pb2
from pyetcd.server.server import EtcdServer

from .errors import unary


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
            isLearner=False,
        )

    @unary
    async def Alarm(self, r: rpc_pb2.AlarmRequest, context: Any) -> rpc_pb2.AlarmResponse:
        # No alarm can be raised yet (no quota enforcement, no corruption check): GET lists none.
        return rpc_pb2.AlarmResponse(header=self.s.header())
