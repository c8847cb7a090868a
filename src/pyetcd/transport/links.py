"""Raft message streams to the peers, on native threads: each stream is a gRPC call (Peer/Stream)
made by the HTTP/2 transport's thread (h2/_h2.c, Transport.call), its TLS done by a pump
(gateway/_pump.c with ``connect``), neither holding the GIL.

Why: every message a leader sends and every answer a follower returns crosses one of these
streams. Through a grpc.aio client stream a 300-byte batch costs a round trip of 370 us on
loopback (session 19's ping-pong), most of it grpc's Cython glue and C-core's TLS under the GIL;
the same stream spoken by a Python HTTP/2 client on asyncio's TLS measured no better inside a
member (session 20: 93 us to send a batch, against 98). Here sending a batch is one call that
queues its bytes for the HTTP/2 thread.

The wire is the gRPC a grpc.aio channel sends, so either peer server (ours, or grpc.aio's
with ``PYETCD_PEER_GRPC=grpcio``) takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from pyetcd.tls import TLSInfo, parse_url

try:
    from pyetcd.gateway._pump import Pump
    from pyetcd.h2 import _h2
except ImportError:  # built without a C compiler, OpenSSL or nghttp2 headers
    Pump = None  # type: ignore[assignment,misc]
    _h2 = None  # type: ignore[assignment]

PATH = "/pyetcdpeerpb.Peer/Stream"
CONNECT_TIMEOUT = 2.0
MAX_RECEIVE = 1 << 20  # the stream's one reply is a StreamAck
DRAIN_EVERY = 1 << 20  # after this many bytes a stream waits for the HTTP/2 thread to take them
# The sender frames and writes its messages itself when the HTTP/2 thread is idle (h2/_h2.c,
# send's direct); "0": always through that thread (for A/B runs in bench/kv.py).
DIRECT_SENDS = os.environ.get("PYETCD_H2_DIRECT", "1") != "0"
# a silent connection is PINGed, and closed when that goes unanswered: the peer channels' grpc
# keepalive (transport.py), which a blackholed network would otherwise hide until it heals
KEEPALIVE_MS, KEEPALIVE_TIMEOUT_MS = 10_000, 20_000


def available() -> bool:
    return Pump is not None and _h2 is not None


class StreamEnded(Exception):
    """The stream ended: ``code`` is its grpc-status (None: none came, the connection broke)."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"status {code}: {message}" if code is not None else message)
        self.code = code
        self.message = message


@dataclass(eq=False)
class Link:
    """One outgoing stream. ``ready``: the peer's server answered (TLS and HTTP/2 are up);
    ``ended``: how the stream ended."""

    links: Links
    key: int
    ready: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    ended: asyncio.Future[StreamEnded] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    _unsent: int = 0
    _drained: asyncio.Future[None] | None = None

    def writable(self) -> bool:
        """Whether a message may go now: the stream is open and the HTTP/2 thread keeps up."""
        return not self.ended.done() and self._drained is None

    def takes(self, size: int) -> bool:
        """From any thread: whether a message of ``size`` bytes may go now without ``send``
        asking the HTTP/2 thread to report back (which needs the event loop)."""
        return self.writable() and self._unsent + size + 5 < DRAIN_EVERY

    def send(self, message: bytes) -> None:
        """One gRPC message on the stream. On the event loop, after ``writable`` (or waiting for
        it); from another thread only after ``takes``, so that no report is asked for."""
        data = b"\0" + len(message).to_bytes(4, "big") + message
        self._unsent += len(data)
        drain = self._unsent >= DRAIN_EVERY
        if drain:
            self._unsent = 0
            self._drained = asyncio.get_running_loop().create_future()
        self.links.transport.send([(self.key, data, -1, None, drain)], DIRECT_SENDS)

    async def wait_writable(self) -> None:
        """Until the HTTP/2 thread took what was sent; StreamEnded if the stream ends first."""
        if self._drained is not None:
            waits: list[asyncio.Future[Any]] = [self._drained, self.ended]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if self.ended.done():
            raise self.ended.result()

    def close(self) -> None:
        """Close the stream's connection (CLOSED follows)."""
        if not self.ended.done():
            self.links.transport.send([(self.key, b"", _h2.CLOSE, None, False)])

    def _on_drained(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def _on_closed(self, status: int, message: str) -> None:
        self._on_drained()
        if not self.ended.done():
            self.ended.set_result(StreamEnded(status if status >= 0 else None,  # grpc-message is percent-encoded
                                              unquote(message) or "the connection to the peer closed"))
        if not self.ready.done():
            self.ready.cancel()


class Links:
    """The member's outgoing streams: one HTTP/2 thread for all of them, one pump for their TLS."""

    def __init__(self, tls: TLSInfo, keepalive_ms: int = KEEPALIVE_MS,
                 keepalive_timeout_ms: int = KEEPALIVE_TIMEOUT_MS) -> None:
        if not available():
            raise RuntimeError("the native peer transport was not built")
        self.transport = _h2.Transport(-1, MAX_RECEIVE, keepalive_ms, keepalive_timeout_ms)
        self._tls = tls
        self._pump: Pump | None = None
        self._links: dict[int, Link] = {}
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.transport.fileno(), self._on_events)
        self.transport.start()

    def _tls_pump(self) -> Pump:
        """The pump that calls our peers' TLS servers: our peer certificate, their CA; under
        --peer-auto-tls nobody's certificate is checked (etcd skips the check too)."""
        if self._pump is None:
            tls = self._tls
            self._pump = Pump(cert=tls.cert_file or None, key=tls.key_file or None, ca=tls.trusted_ca_file or "",
                              connect=True, verify_server=not tls.auto_tls)
        return self._pump

    async def open(self, url: str) -> Link:
        """A new stream to the peer URL (OSError, TimeoutError: its port did not take the connection)."""
        addr = parse_url(url)
        infos = await self._loop.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.wait_for(self._loop.sock_connect(sock, sockaddr), CONNECT_TIMEOUT)
            if addr.secure:
                ours, theirs = socket.socketpair()
                with contextlib.closing(ours):
                    self._tls_pump().add(sock.detach(), theirs.detach(), addr.host)
                    fd = ours.detach()
            else:
                fd = sock.detach()
        finally:
            sock.close()
        key = self.transport.call(fd, addr.host_port, PATH)
        link = self._links[key] = Link(self, key)
        return link

    def _on_events(self) -> None:
        for ev in self.transport.take():
            kind: Any = ev[0]
            link = self._links.get(ev[1])
            if link is None:
                continue
            if kind == _h2.READY and not link.ready.done():
                link.ready.set_result(None)
            elif kind == _h2.DRAINED:
                link._on_drained()
            elif kind == _h2.CLOSED:
                del self._links[ev[1]]
                link._on_closed(ev[2], ev[3])

    def close(self) -> None:
        """Close every stream and stop the threads."""
        self._loop.remove_reader(self.transport.fileno())
        self.transport.close()
        for link in list(self._links.values()):
            link._on_closed(-1, "the member is stopping")
        self._links.clear()
        if self._pump is not None:
            self._pump.close()
