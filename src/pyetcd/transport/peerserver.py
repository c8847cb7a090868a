"""The peer port served natively: TLS ended by a pump (gateway/_pump.c) and HTTP/2 by the native
gRPC transport (h2/), the way the client port is served, in this process.

Why: every raft message a member receives arrives here. grpc.aio's server took 130-140 us from
the sender's write to the message in our handler (session 20, a lone put on three members);
here TLS and HTTP/2 run on native threads without the GIL, and the event loop only decodes the
message and steps the node.

Each accepted connection is relayed by a pump to the member's private listener (an abstract unix
socket) that h2/server.NativeServer serves with the peer service (transport/service.py). On an
https:// peer URL the pump ends TLS with grpc's rules for our peer certificate (tls.pump_settings)
and reports each peer's certificate on an identity socket, which --peer-cert-allowed-cn reads
(gateway/identities.py), and every handshake it refused, logged there as etcd logs them.
``PYETCD_PEER_GRPC=grpcio`` serves the port with grpc.aio instead (transport/transport.py), as
does a build without the extensions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from itertools import count

from pyetcd.gateway.front import accepted, backend_connection, backend_name, bind
from pyetcd.gateway.identities import RelayedIdentities
from pyetcd.h2.server import ABSTRACT, NativeServer
from pyetcd.rpc.service import served_methods
from pyetcd.tls import ConfigError, TLSInfo, parse_url, pump_settings

from .links import PATH
from .service import PeerService

try:
    from pyetcd.gateway._pump import Pump
except ImportError:  # built without a C compiler
    Pump = None  # type: ignore[assignment,misc]

log = logging.getLogger("pyetcd.transport")
MAX_RECEIVE = 2**31 - 1  # as the grpc.aio peer server: snapshot chunks and large appends
_connections = count()
STREAM_PATH = PATH.encode()


class NativePeerServer:
    """The part of grpc.aio.Server the peer transport uses (stop), on the native transport."""

    def __init__(self, urls: list[str], tls: TLSInfo, service: PeerService, identities: RelayedIdentities) -> None:
        if Pump is None:
            raise RuntimeError("gateway/_pump.c was not built")
        self._backend = backend_name()
        methods = served_methods([("Peer", service)])
        stream = methods[STREAM_PATH]  # raft messages: each batch stepped as it arrives (rpc.service.StreamSink)
        methods[STREAM_PATH] = dataclasses.replace(stream, sink=service.stream_sink)
        self._server = NativeServer(methods, [ABSTRACT + self._backend], MAX_RECEIVE)
        self._identities = identities
        self._socks: list[tuple[socket.socket, bool]] = []
        for url in urls:
            addr = parse_url(url)  # an https URL has TLS settings (PeerTransport.serve checked)
            try:
                self._socks.append((bind(addr.host, addr.port), addr.secure))
            except OSError as e:
                for sock, _ in self._socks:
                    sock.close()
                raise ConfigError(f"cannot listen on peer URL {url}: address already in use or not available "
                                  f"({e.strerror or e})") from e
        self._tls = tls
        self._reports: socket.socket | None = None  # ours of the identity socket pair
        self._report_end: socket.socket | None = None  # the pump's
        self._pumps: dict[bool, Pump] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self._server.start()
        if any(secure for _, secure in self._socks):
            self._reports, self._report_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self._reports.setblocking(False)
            loop.add_reader(self._reports.fileno(), self._read_reports)
            self._identities.catch_up = self._read_reports
            self._pumps[True] = Pump(**pump_settings(self._tls), identity_fd=self._report_end.fileno())  # type: ignore[arg-type]
        if not all(secure for _, secure in self._socks):
            self._pumps[False] = Pump()
        self._tasks = [loop.create_task(self._accept(sock, secure)) for sock, secure in self._socks]

    def _read_reports(self) -> None:
        """The pump's reports (gateway/identities.py's messages): who each peer is, and the
        handshakes it refused."""
        assert self._reports is not None
        while True:
            try:
                msg = self._reports.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            if not msg:
                return
            self._identities.message(msg)

    async def _accept(self, sock: socket.socket, secure: bool) -> None:
        pump = self._pumps[secure]
        async for conn in accepted(sock):
            try:  # bound to a name of its own: the peer as the service sees it (identities)
                backend = backend_connection(self._backend, f"{self._backend}-p{next(_connections)}")
            except OSError as e:
                log.warning("cannot relay a peer connection: %s", e)
                conn.close()
                continue
            pump.add(conn.detach(), backend.detach())  # both descriptors now belong to the pump

    async def stop(self, grace: float | None = None) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock, _ in self._socks:
            sock.close()
        await self._server.stop(grace)
        for pump in self._pumps.values():
            pump.close()
        if self._reports is not None:
            asyncio.get_running_loop().remove_reader(self._reports.fileno())
            self._reports.close()
        if self._report_end is not None:
            self._report_end.close()
        self._identities.forget_all()

