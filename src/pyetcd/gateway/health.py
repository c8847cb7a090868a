"""/health, /livez, /readyz and /version as etcd 3.5 answers them.

Unhealthy (HTTP 503) when an alarm is raised (``?exclude=NOSPACE`` ignores one), when there is
no leader, or when a read does not complete in time (linearizable unless ``?serializable=true``).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from pyetcd import ETCD_API_VERSION
from pyetcd.api import rpc_pb2
from pyetcd.errors import EtcdError
from pyetcd.server.etcd_server import EtcdServer

CLUSTER_VERSION = "3.5.0"


def _answer(healthy: bool, reason: str = "") -> web.Response:
    body = json.dumps({"health": "true" if healthy else "false", "reason": reason}, separators=(",", ":"))
    return web.Response(status=200 if healthy else 503, text=body, content_type="application/json")


class Health:
    def __init__(self, server: EtcdServer) -> None:
        self.s = server

    def add_routes(self, app: web.Application, *, probes: bool = True) -> None:
        app.router.add_get("/health", self.health)
        if probes:
            app.router.add_get("/livez", self.livez)
            app.router.add_get("/readyz", self.health)
            app.router.add_get("/version", self.version)

    async def health(self, request: web.Request) -> web.Response:
        excluded = set(request.query.getall("exclude", []))
        for alarm in self.s.alarms():
            name = rpc_pb2.AlarmType.Name(alarm.alarm)
            if name not in excluded:
                return _answer(False, f"ALARM {name}")
        if not self.s.leader:
            return _answer(False, "RAFT NO LEADER")
        try:
            serializable = request.query.get("serializable") == "true"
            await asyncio.wait_for(self.s.range(rpc_pb2.RangeRequest(key=b"health", keys_only=True, limit=1,
                                                                     serializable=serializable)),
                                   self.s.cfg.request_timeout)
        except (EtcdError, TimeoutError) as e:
            return _answer(False, f"RANGE ERROR: {e}")
        return _answer(True)

    async def livez(self, request: web.Request) -> web.Response:
        return _answer(True)  # the event loop answered: the process is alive

    async def version(self, request: web.Request) -> web.Response:
        body = json.dumps({"etcdserver": ETCD_API_VERSION, "etcdcluster": CLUSTER_VERSION}, separators=(",", ":"))
        return web.Response(text=body, content_type="application/json")
