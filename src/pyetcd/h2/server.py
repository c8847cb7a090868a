"""The client port's gRPC without grpcio's server: HTTP/2 on a native thread (h2/_h2.c), calls here.

Behind the front (gateway/front.py), which ends TLS and relays plaintext HTTP/2 to the member's
private listener, this serves that listener in grpcio's place. grpc.aio spends 100-200 us of
the member's CPU on a request before any of pyetcd's code runs, all of it under the GIL
(bench/grpc_floor.py); here the native thread parses frames and reassembles messages, and the
event loop takes every message that arrived in one call and gives every reply of a loop pass
back in one call. The servicers, the CallGuard and the call counters are the same as grpcio's
(rpc/service.served_methods).

``PYETCD_CLIENT_GRPC=grpcio`` in the environment serves the listener with grpc.aio instead
(bench/kv.py's A/B); so does a build without the extension (no nghttp2 headers at install).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping

from pyetcd.rpc.grpcserver import ClientAPI
from pyetcd.rpc.limits import GRPC_OVERHEAD_BYTES
from pyetcd.rpc.service import ServedMethod, served_methods
from pyetcd.server.etcd_server import EtcdServer

from .call import UNIMPLEMENTED, Call, Op

try:
    from pyetcd.h2 import _h2
except ImportError:  # built without nghttp2's headers
    _h2 = None  # type: ignore[assignment]

log = logging.getLogger("pyetcd.h2")
ABSTRACT = "unix-abstract:"


def available() -> bool:
    """Whether the native transport is built and not turned off (PYETCD_CLIENT_GRPC=grpcio)."""
    return _h2 is not None and os.environ.get("PYETCD_CLIENT_GRPC", "native") != "grpcio"


def native_server(s: EtcdServer, api: ClientAPI, listen: list[tuple[str, bool]] | None) -> NativeServer | None:
    """The server for the front's private listeners (plaintext, abstract unix sockets), or None
    when grpc.aio must serve ``listen``: the extension is not built or is turned off, or there is
    no front (gRPC alone on the client URLs, with gRPC's own TLS)."""
    if not listen or not available() or not all(not tls and a.startswith(ABSTRACT) for a, tls in listen):
        return None
    methods = served_methods(api.services, api.guard, api.observer)
    return NativeServer(methods, [a for a, _ in listen], s.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES)


def unknown_method(path: bytes, methods: Mapping[bytes, ServedMethod]) -> str:
    """Go gRPC's words for a method it does not serve, which etcd's clients see."""
    text = path.decode(errors="replace")
    service, sep, method = text[1:].rpartition("/")
    if not text.startswith("/") or not sep:
        return f"malformed method name: {text!r}"
    if any(p.startswith(f"/{service}/".encode()) for p in methods):
        return f"unknown method {method} for service {service}"
    return f"unknown service {service}"


class _Endpoint:
    """One listening socket's transport and its calls."""

    def __init__(self, transport: _h2.Transport, methods: Mapping[bytes, ServedMethod], max_receive: int) -> None:
        self.transport = transport
        self.methods = methods
        self.max_receive = max_receive
        self.calls: dict[int, Call] = {}
        self.idle = asyncio.Event()
        self.idle.set()
        self._ops: list[Op] = []
        self._loop = asyncio.get_running_loop()
        self._flush_soon = False

    def on_events(self) -> None:
        calls = self.calls
        for ev in self.transport.take():
            kind, key = ev[0], ev[1]
            if kind == _h2.MSG:
                call = calls.get(key)
                if call is not None:
                    call.on_message(ev[2], ev[3])
            elif kind == _h2.OPEN:
                self._open(key, ev[2], ev[3], ev[4])
            elif (call := calls.get(key)) is None:
                continue
            elif kind == _h2.HALF:
                call.on_half_close()
            elif kind == _h2.GONE:
                call.on_gone()
            elif kind == _h2.BIG:
                call.on_too_big(ev[2], self.max_receive)
            elif kind == _h2.DRAINED:
                call.on_drained()
        self.flush()

    def _open(self, key: int, path: bytes, metadata: tuple[tuple[str, str], ...], peer: str) -> None:
        method = self.methods.get(path)
        if method is None:
            self._ops.append((key, b"", UNIMPLEMENTED, unknown_method(path, self.methods), False))
            return
        self.calls[key] = Call(self, key, method, metadata, peer)
        self.idle.clear()

    def queue(self, op: Op) -> None:
        self._ops.append(op)
        if not self._flush_soon:
            self._flush_soon = True
            self._loop.call_soon(self.flush)

    def finished(self, key: int) -> None:
        self.calls.pop(key, None)
        if not self.calls:
            self.idle.set()

    def flush(self) -> None:
        """Hand every queued reply to the HTTP/2 thread at once."""
        self._flush_soon = False
        if self._ops:
            ops, self._ops = self._ops, []
            self.transport.send(ops)


def _listen(address: str) -> socket.socket:
    """A listening socket for ``unix-abstract:NAME`` (the front's private backend address)."""
    if not address.startswith(ABSTRACT):
        raise ValueError(f"the native gRPC transport serves abstract unix sockets only, not {address}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind("\0" + address[len(ABSTRACT):])
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class NativeServer:
    """The part of grpc.aio.Server the member uses (start, stop), on the native transport."""

    def __init__(self, methods: Mapping[bytes, ServedMethod], addresses: list[str], max_receive: int) -> None:
        if _h2 is None:
            raise RuntimeError("pyetcd.h2._h2 was not built")
        self._methods = methods
        self._max_receive = max_receive
        self._socks = [_listen(a) for a in addresses]  # bound now, as grpc binds its ports when added
        self._endpoints: list[_Endpoint] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._socks:
            ep = _Endpoint(_h2.Transport(sock.fileno(), self._max_receive), self._methods, self._max_receive)
            loop.add_reader(ep.transport.fileno(), ep.on_events)
            ep.transport.start()
            self._endpoints.append(ep)

    async def stop(self, grace: float | None = None) -> None:
        """GOAWAY to every client, let calls in flight finish for ``grace`` seconds, then cancel them."""
        for ep in self._endpoints:
            ep.transport.goaway()
        if grace and self._endpoints:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(ep.idle.wait() for ep in self._endpoints)), grace)
        loop = asyncio.get_running_loop()
        for ep in self._endpoints:
            for call in list(ep.calls.values()):
                if call.task is not None:
                    call.task.cancel()
            ep.flush()
            loop.remove_reader(ep.transport.fileno())
            ep.transport.close()
        self._endpoints.clear()
        for sock in self._socks:
            sock.close()
        self._socks.clear()
