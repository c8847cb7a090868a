"""An asyncio Watch client over real gRPC/TLS, for the watch tests and bench/watch.py.

``WatchConn`` is one Watch stream: ``send`` requests; a background task appends every response,
in order, to ``log``. A test can stop reading (``pause_reading``) and resume later.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support.member import Member

_OPTS = [("grpc.max_receive_message_length", 2**31 - 1), ("grpc.max_send_message_length", 2**31 - 1)]


def aio_channel(member: Member) -> grpc.aio.Channel:
    tls = member.client_tls()
    assert tls.cert and tls.key
    creds = grpc.ssl_channel_credentials(root_certificates=tls.ca.read_bytes(), private_key=tls.key.read_bytes(),
                                         certificate_chain=tls.cert.read_bytes())
    return grpc.aio.secure_channel(member.grpc_target, creds, options=_OPTS)


def create_req(key: bytes, range_end: bytes = b"", start_revision: int = 0, *, watch_id: int = 0,
               prev_kv: bool = False, filters: tuple[int, ...] = (), progress_notify: bool = False,
               fragment: bool = False) -> rpc_pb2.WatchRequest:
    return rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
        key=key, range_end=range_end, start_revision=start_revision, watch_id=watch_id, prev_kv=prev_kv,
        filters=list(filters), progress_notify=progress_notify, fragment=fragment))


def cancel_req(watch_id: int) -> rpc_pb2.WatchRequest:
    return rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=watch_id))


def progress_req() -> rpc_pb2.WatchRequest:
    return rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())


class WatchConn:
    """One Watch stream on ``channel``."""

    def __init__(self, channel: grpc.aio.Channel, *, read: bool = True) -> None:
        self._requests: asyncio.Queue[rpc_pb2.WatchRequest | None] = asyncio.Queue()
        self.call = rpc_pb2_grpc.WatchStub(channel).Watch(self._gen())
        self.log: list[rpc_pb2.WatchResponse] = []
        self.last_recv = 0.0
        self._new = asyncio.Event()
        self._gate = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        if read:
            self.resume_reading()

    async def _gen(self) -> AsyncIterator[rpc_pb2.WatchRequest]:
        while (req := await self._requests.get()) is not None:
            yield req

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            while True:
                await self._gate.wait()
                resp = await self.call.read()
                if resp is grpc.aio.EOF:
                    return
                self.last_recv = loop.time()
                self.log.append(resp)
                self._new.set()

    def resume_reading(self) -> None:
        self._gate.set()
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())

    def pause_reading(self) -> None:
        """Stop reading (the client's buffers fill, then the server's flow control holds its writes)."""
        self._gate.clear()

    async def send(self, req: rpc_pb2.WatchRequest) -> None:
        await self._requests.put(req)

    async def wait_for(self, pred: Callable[[rpc_pb2.WatchResponse], bool], start: int = 0,
                       timeout: float = 10.0) -> tuple[int, rpc_pb2.WatchResponse]:
        """The first response at index >= start satisfying pred (and its index)."""
        async with asyncio.timeout(timeout):
            i = start
            while True:
                while i < len(self.log):
                    if pred(self.log[i]):
                        return i, self.log[i]
                    i += 1
                self._new.clear()
                await self._new.wait()

    async def create(self, *args: Any, timeout: float = 10.0, **kw: Any) -> rpc_pb2.WatchResponse:
        """Send a create request and return its created response."""
        start = len(self.log)
        await self.send(create_req(*args, **kw))
        return (await self.wait_for(lambda r: r.created, start, timeout))[1]

    async def idle(self, quiet: float, timeout: float = 30.0) -> None:
        """Wait until nothing arrived for ``quiet`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.last_recv = max(self.last_recv, loop.time())
        while loop.time() < deadline and loop.time() - self.last_recv < quiet:
            await asyncio.sleep(quiet / 4)

    async def close(self) -> None:
        await self._requests.put(None)
        self.call.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
