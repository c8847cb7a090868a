"""The member's side of the front: bind the client URLs, run gateway/relay.py in a child process
with their sockets, serve the HTTP connections it hands back (restarting it if it dies), and
learn who its TLS clients are (gateway/identities.py) from the same socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .front import backend_name, bind
from .identities import RelayedIdentities

log = logging.getLogger("pyetcd.gateway")
RESTART_DELAY = 1.0
MESSAGE_BYTES = 64 * 1024  # an HTTP handover is one byte; an identity carries a certificate


@dataclass
class ClientURL:
    url: str
    sock: socket.socket
    tls: bool
    backend: str  # the abstract unix socket name of this URL's private gRPC listener

    @property
    def grpc_address(self) -> str:
        return f"unix-abstract:{self.backend}"


class RelayProcess:
    """``tls_end``: the settings with which the front ends TLS on https URLs (gateway/front.Front),
    None when gRPC does TLS itself; the front then reports its clients to ``identities``."""

    def __init__(self, on_http: Callable[[ClientURL, socket.socket], None], identities: RelayedIdentities,
                 tls_end: dict[str, object] | None = None) -> None:
        self.urls: list[ClientURL] = []
        self.on_http = on_http
        self.identities = identities
        self.tls_end = tls_end
        identities.catch_up = self._receive
        self._ours: socket.socket | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    def bind(self, url: str, host: str, port: int, tls: bool) -> ClientURL:
        u = ClientURL(url, bind(host, port), tls, backend_name())
        self.urls.append(u)
        return u

    async def start(self) -> None:
        await self._spawn()
        self._watch = asyncio.get_running_loop().create_task(self._supervise())

    async def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        specs = [f"{u.sock.fileno()}:{int(u.tls)}:{u.backend}" for u in self.urls]
        fds = [theirs.fileno(), *(u.sock.fileno() for u in self.urls)]
        tls_end = json.dumps(self.tls_end) if self.tls_end else "-"
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pyetcd.gateway.relay", str(theirs.fileno()), tls_end, *specs, pass_fds=fds)
        theirs.close()
        ours.setblocking(False)
        self._ours = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), self._receive)

    def _receive(self) -> None:
        while self._ours is not None:
            try:
                msg, fds, _, _ = socket.recv_fds(self._ours, MESSAGE_BYTES, 16)
            except (BlockingIOError, InterruptedError):
                return
            if not msg and not fds:
                return
            if len(msg) > 1 and not fds:
                self.identities.message(msg)
            for fd in fds:
                conn = socket.socket(fileno=fd)
                if msg and msg[0] < len(self.urls):
                    self.on_http(self.urls[msg[0]], conn)
                else:
                    conn.close()

    async def _supervise(self) -> None:
        while not self._stopping:
            assert self._proc is not None
            code = await self._proc.wait()
            if self._stopping:
                return
            log.error("the client-port front (pid %d) exited with status %s; restarting it", self._proc.pid, code)
            self._close_ours()
            self.identities.forget_all()  # its connections ended with it
            await asyncio.sleep(RESTART_DELAY)
            await self._spawn()

    def _close_ours(self) -> None:
        if self._ours is not None:
            asyncio.get_running_loop().remove_reader(self._ours.fileno())
            self._ours.close()
            self._ours = None

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
        self._close_ours()  # the front sees EOF and exits
        if self._proc is not None and self._proc.returncode is None:
            try:
                await asyncio.wait_for(self._proc.wait(), 2.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
                await self._proc.wait()
        for u in self.urls:
            u.sock.close()
