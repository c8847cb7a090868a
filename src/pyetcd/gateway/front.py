"""One client URL, two servers: gRPC and HTTP share the port, as etcd's cmux makes them.

Each accepted connection is classified from its first bytes, read with MSG_PEEK so nothing is
consumed: on an ``http://`` URL the HTTP/2 preface means gRPC (etcd sends every HTTP/2 connection
there too) and anything else is HTTP/1.1; on an ``https://`` URL the ClientHello's ALPN list tells
(gateway/hello.py). HTTP connections are handed over, unread, to the member's aiohttp server
(gateway/relay.py: the front runs in a child process), which does TLS with the same mutual-TLS
rules. gRPC connections are relayed to the gRPC server on a private abstract unix socket.

The relaying itself is native (gateway/_pump.c: a thread of its own, epoll, no GIL): this process
only accepts and classifies. On an ``https://`` URL the pump also ends the client's TLS
(gateway/_tlsend.c), so a refused certificate gets etcd's alert, and tells the member who each
client is (gateway/identities.py); the gRPC server behind it speaks plaintext. Where the
extension was not built (no C compiler or OpenSSL headers at install) the asyncio relay below
passes the bytes still encrypted and the gRPC server does TLS itself, at tens of microseconds
more CPU per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from itertools import count
from typing import Any, cast

from . import hello
from .tlsalert import ServerRecords

try:
    from ._pump import Pump
except ImportError:  # built without a C compiler
    Pump = None  # type: ignore[assignment,misc]

log = logging.getLogger("pyetcd.gateway.front")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CLASSIFY_TIMEOUT = 10.0  # a client that sends nothing this long after connecting is dropped
_names = count()
_connections = count()


def backend_name() -> str:
    """A fresh abstract unix socket name for a private gRPC listener of this process."""
    return f"pyetcd-{os.getpid()}-{next(_names)}-grpc"


def native_relay() -> bool:
    """Whether gRPC is relayed (and TLS ended) by gateway/_pump: built, and not turned off with
    ``PYETCD_FRONT_RELAY=python`` (bench/front.py's A/B). Member and front process both ask."""
    return Pump is not None and os.environ.get("PYETCD_FRONT_RELAY", "native") != "python"


class _Pipe(asyncio.Protocol):
    """(Only without gateway/_pump.) One direction-pair end of a relay: what arrives is written to the peer, back-pressure too."""

    def __init__(self, live: set[asyncio.Transport], records: ServerRecords | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self._early: list[bytes] = []
        self._live = live  # the front's open relay ends, closed when it stops
        self.records = records  # on the gRPC server's end of a TLS relay: see tlsalert.py
        self.got_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._live.add(self.transport)

    def attach(self, peer: _Pipe) -> None:
        self.peer = peer
        for data in self._early:
            assert peer.transport is not None
            peer.transport.write(data)
        self._early.clear()

    def data_received(self, data: bytes) -> None:
        if self.records is not None and not self.records.settled:
            self.records.feed(data)
        if self.peer is None or self.peer.transport is None:
            self._early.append(data)
        else:
            self.peer.transport.write(data)

    def eof_received(self) -> bool:
        self.got_eof = True
        self._alert_refusal()
        if self.peer is not None and self.peer.transport is not None and self.peer.transport.can_write_eof():
            self.peer.transport.write_eof()
        return True  # keep the other direction open (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self._live.discard(self.transport)
        self._alert_refusal()
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def _alert_refusal(self) -> None:
        """The server ended a TLS handshake it refused: tell the client why, as etcd does."""
        peer = self.peer
        if self.records is None or peer is None or peer.transport is None or peer.got_eof:
            return
        alert = self.records.refusal_alert()
        self.records = None  # once
        if alert is not None and not peer.transport.is_closing():
            peer.transport.write(alert)

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)
    loop.add_reader(sock.fileno(), ready)
    try:
        await fut
    finally:
        loop.remove_reader(sock.fileno())


async def _peek(loop: asyncio.AbstractEventLoop, sock: socket.socket, tls: bool) -> bytes:
    """The connection's first bytes, left unread: enough to classify it (b"" if it closed)."""
    data = b""
    while True:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            data = sock.recv(16384, socket.MSG_PEEK)
            if not data:
                return b""
            need = (hello.record_length(data) or len(data)) if tls else len(PREFACE)
            if len(data) >= need or (not tls and not PREFACE.startswith(data)):
                return data
            await asyncio.sleep(0.001)  # part of it arrived; the socket stays readable until all has
            continue
        await _readable(loop, sock)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket of a client URL (bound by the member, so a taken port fails its start)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=socket.SOMAXCONN)
    sock.setblocking(False)
    return sock


async def accepted(sock: socket.socket) -> AsyncIterator[socket.socket]:
    """Every connection accepted on the listening ``sock``, with TCP_NODELAY. An accept that
    fails (out of descriptors and the like) is logged and tried again a little later: the
    member's other ports keep serving meanwhile."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            conn, _ = await loop.sock_accept(sock)
        except OSError as e:
            log.warning("accept on %s failed: %s", sock.getsockname(), e)
            await asyncio.sleep(0.1)
            continue
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield conn


def backend_connection(backend: str, name: str | None = None) -> socket.socket:
    """A connection to the private gRPC listener ``backend`` (a local listener: it connects at
    once), bound first to the abstract ``name`` when given: the peer the gRPC server then sees
    (gateway/identities.py keys a relayed certificate by it). Closed again if either fails."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if name is not None:
            conn.bind("\0" + name)
        conn.connect("\0" + backend)
    except BaseException:
        conn.close()
        raise
    return conn


HandOver = Callable[[socket.socket], Awaitable[None]]


class Front:
    """Accepts on one client URL; relays gRPC connections and hands HTTP ones to ``on_http``.

    ``tls_end``: on an https URL with the native relay, the pump's TLS settings (gateway/_pump.c's
    Pump keywords: cert, key, ca, verify_client, identity_fd); the gRPC server then speaks plaintext.
    """

    def __init__(self, sock: socket.socket, tls: bool, backend: str, on_http: HandOver,
                 native: bool = True, tls_end: Mapping[str, Any] | None = None) -> None:
        self.sock, self.tls, self.backend, self.on_http = sock, tls, backend, on_http
        self.native = native  # relay with gateway/_pump (False: in Python, for A/B benches and tests)
        self.tls_end = tls_end if tls and native else None
        self._accepting: asyncio.Task[None] | None = None
        self._relays: set[asyncio.Transport] = set()
        self._pending: set[asyncio.Task[None]] = set()
        self._pump: Pump | None = None

    def start(self) -> None:
        if Pump is not None and self.native:
            self._pump = Pump(**self.tls_end) if self.tls_end else Pump()
        elif self.native:
            log.warning("gateway/_pump.c was not built (no C compiler at install?): relaying gRPC in Python, "
                        "which costs more CPU per request; reinstall with a C compiler to fix")
        self._accepting = asyncio.get_running_loop().create_task(self._accept())

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        async for conn in accepted(self.sock):
            task = loop.create_task(self._dispatch(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _dispatch(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            head = await asyncio.wait_for(_peek(loop, conn, self.tls), CLASSIFY_TIMEOUT)
            if not head:
                conn.close()
            elif hello.is_grpc(hello.offered_alpn(head)) if self.tls else head.startswith(PREFACE):
                await self._relay(loop, conn)
            else:
                await self.on_http(conn)
        except (OSError, TimeoutError) as e:
            log.debug("client connection dropped before it was served: %s", e)
            conn.close()

    async def _relay(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        def pipe() -> _Pipe:
            return _Pipe(self._relays)

        def server_end() -> _Pipe:
            return _Pipe(self._relays, ServerRecords() if self.tls else None)
        # with TLS ended here: named, for the gRPC server's view of the peer (gateway/identities.py),
        # uniquely across restarts of this process too
        name = f"{self.backend}-{os.getpid()}-c{next(_connections)}" if self.tls_end else None
        backend = backend_connection(self.backend, name)
        if self._pump is not None:  # both descriptors now belong to the pump
            self._pump.add(conn.detach(), backend.detach())
            return
        backend.setblocking(False)
        back_tr, back = await loop.create_unix_connection(server_end, sock=backend)
        try:
            _, client = await loop.connect_accepted_socket(pipe, conn)
        except BaseException:
            back_tr.close()
            raise
        client.attach(back)
        back.attach(client)

    async def stop(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
        for task in list(self._pending):
            task.cancel()
        for tr in list(self._relays):
            tr.close()
        if self._pump is not None:
            self._pump.close()  # closes every connection it relays
