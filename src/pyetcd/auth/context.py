"""Who is making the current request: etcd's AuthInfo, carried like etcd's request context.

The rpc guard resolves the caller (token or client certificate CN) once per call and sets
``current``; ``EtcdServer.propose`` copies it into the proposal's header so the applier can
re-check the write with the auth revision the request was checked at. Each gRPC call runs in
its own task, so the value never leaks between calls.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class AuthInfo:
    username: str = ""
    revision: int = 0


NOBODY = AuthInfo()
current: ContextVar[AuthInfo | None] = ContextVar("pyetcd_auth_info", default=None)
