"""Experiment (``PYETCD_GRPC_SERVER=threaded``): etcd's unary methods on grpc's threaded server.

design.md asked whether grpc's thread-pool server beats grpc.aio for our handlers. The handlers
are coroutines that talk to the node loop, so each call crosses from a grpc worker thread onto
the event loop and back (``run_coroutine_threadsafe``). Streaming methods (Watch, LeaseKeepAlive,
Snapshot, Observe) are not bridged: they answer UNIMPLEMENTED in this mode, which is why it is
not the default. bench/kv.py measures it (``--variant threaded:PYETCD_GRPC_SERVER=threaded``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

WORKERS = 32


class _Context:
    """The part of grpc.aio's ServicerContext our handlers use, over a threaded-server context."""

    def __init__(self, ctx: grpc.ServicerContext) -> None:
        self._ctx = ctx

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self._ctx.abort(code, details)  # raises; the worker thread sees it and ends the call

    def invocation_metadata(self) -> Any:
        return self._ctx.invocation_metadata()

    def auth_context(self) -> Any:
        return self._ctx.auth_context()


def bridge(loop: asyncio.AbstractEventLoop) -> Callable[[Callable[[Any, Any], Awaitable[Any]]], Any]:
    """Turn a coroutine handler into a blocking one that runs it on ``loop``."""
    def wrap(fn: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, grpc.ServicerContext], Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            return asyncio.run_coroutine_threadsafe(fn(request, _Context(context)), loop).result()  # type: ignore[arg-type]
        return call
    return wrap


class ThreadedServer:
    """grpc.Server behind grpc.aio.Server's async start/stop, so serve() drives either."""

    def __init__(self, options: list[tuple[str, Any]]) -> None:
        self.server = grpc.server(ThreadPoolExecutor(WORKERS), options=options)

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.server.add_generic_rpc_handlers(handlers)

    def add_secure_port(self, address: str, creds: grpc.ServerCredentials) -> int:
        return self.server.add_secure_port(address, creds)

    def add_insecure_port(self, address: str) -> int:
        return self.server.add_insecure_port(address)

    async def start(self) -> None:
        self.server.start()

    async def stop(self, grace: float | None) -> None:
        await asyncio.to_thread(self.server.stop(grace).wait)
