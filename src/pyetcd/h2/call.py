"""One gRPC call on the native transport (h2/server.py): its context, its requests, its replies.

A call starts when its first request message arrives (a client stream's at once), runs its
handler in a task of its own as grpc.aio does (a method with a StreamSink: each request in the
event callback itself), and ends with one status. Replies are queued to
the endpoint, which hands everything a loop pass produced to the HTTP/2 thread at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

import grpc

from pyetcd.rpc.callcontext import CallAborted, CallContext
from pyetcd.rpc.service import STREAM_UNMARSHAL_ERROR, ServedMethod, StreamSink, Undecodable

log = logging.getLogger("pyetcd.h2")


def _number(code: grpc.StatusCode) -> int:
    """The grpc-status number of a status code."""
    return code.value[0]  # type: ignore[no-any-return]


OK, CANCELLED, UNKNOWN = _number(grpc.StatusCode.OK), _number(grpc.StatusCode.CANCELLED), _number(grpc.StatusCode.UNKNOWN)
DEADLINE_EXCEEDED, INTERNAL = _number(grpc.StatusCode.DEADLINE_EXCEEDED), _number(grpc.StatusCode.INTERNAL)
UNIMPLEMENTED, RESOURCE_EXHAUSTED = _number(grpc.StatusCode.UNIMPLEMENTED), _number(grpc.StatusCode.RESOURCE_EXHAUSTED)
DRAIN_EVERY = 1 << 20  # a stream's replies wait for the HTTP/2 thread to take this many queued bytes
_END = object()  # the client finished sending
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# Op: (key, framed messages, status or -1, grpc-message, ask for DRAINED)
Op = tuple[int, bytes, int, "str | None", bool]


class Endpoint(Protocol):
    """What a call needs of its transport's endpoint (h2/server.py)."""

    def queue(self, op: Op) -> None: ...

    def finished(self, key: int) -> None: ...


def frame(data: bytes) -> bytes:
    """An encoded reply as one gRPC message: not compressed, 4-byte big-endian length, the bytes."""
    return b"\0" + len(data).to_bytes(4, "big") + data


def grpc_message(text: str) -> str:
    """grpc-message's percent-encoding (the gRPC HTTP/2 spec): printable ASCII but '%' as is."""
    if text.isascii() and text.isprintable() and "%" not in text:
        return text
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in text.encode())


def timeout_of(value: str) -> float | None:
    """Seconds from a grpc-timeout header ("5S", "100m"); None when it does not parse."""
    unit = _TIMEOUT_UNITS.get(value[-1:])
    if unit is None or not value[:-1].isdigit():
        return None
    return int(value[:-1]) * unit


class Call:
    __slots__ = ("ctx", "deadline", "drained", "encoding", "endpoint", "expired", "key", "method", "requests",
                 "sink", "started", "task", "unsent")

    def __init__(self, endpoint: Endpoint, key: int, method: ServedMethod, metadata: tuple[tuple[str, str], ...],
                 peer: str) -> None:
        self.endpoint = endpoint
        self.key = key
        self.method = method
        self.ctx = CallContext(metadata, {}, peer)
        self.task: asyncio.Task[None] | None = None
        self.requests: asyncio.Queue[Any] | None = None
        self.sink: StreamSink | None = None
        self.started = self.expired = False
        self.deadline: asyncio.TimerHandle | None = None
        self.drained: asyncio.Future[None] | None = None
        self.unsent = 0
        self.encoding: str | None = None
        loop = asyncio.get_running_loop()
        for name, value in metadata:
            if name == "grpc-timeout":
                seconds = timeout_of(value)
                if seconds is not None:
                    self.deadline = loop.call_later(seconds, self._expire)
            elif name == "grpc-encoding":
                self.encoding = value
        if method.client_streaming and method.sink is not None:
            self.sink = method.sink(self.ctx)
            self.started = True
        elif method.client_streaming:
            self.requests = asyncio.Queue()
            self._start(self._request_stream())

    # ---- events from the HTTP/2 thread ----

    def on_message(self, compressed: int, data: bytes) -> None:
        if compressed:  # etcd's gRPC server has no decompressor either
            self.end(UNIMPLEMENTED, f'grpc: Decompressor is not installed for grpc-encoding "{self.encoding}"')
            return
        request = self.method.decode(data)
        if self.sink is not None:
            self._to_sink(request)
        elif self.requests is not None:
            self.requests.put_nowait(request)
        elif not self.started:
            self._start(request)

    def on_half_close(self) -> None:
        if self.sink is not None:
            self._finish(frame(self.method.encode(self.sink.reply())), OK, None)
        elif self.requests is not None:
            self.requests.put_nowait(_END)
        elif not self.started:
            self.end(INTERNAL, "grpc: the client sent no request message")

    def on_gone(self) -> None:
        """The client reset the stream or its connection closed: the handler is cancelled."""
        self.ctx.cancelled_by_client = True
        if self.task is not None:
            self.task.cancel()
        self._release()

    def on_too_big(self, size: int, limit: int) -> None:
        self.end(RESOURCE_EXHAUSTED, f"grpc: received message larger than max ({size} vs. {limit})")

    def on_drained(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    # ---- running the handler ----

    def _to_sink(self, request: Any) -> None:
        """A request to the call's StreamSink, answered as ``_run`` answers a handler's end."""
        assert self.sink is not None
        if isinstance(request, Undecodable):
            self.end(INTERNAL, STREAM_UNMARSHAL_ERROR + request.reason)
            return
        try:
            self.sink.message(request)
        except Exception as e:
            self._failed(e)

    def _start(self, arg: Any) -> None:
        self.started = True
        self.task = asyncio.get_running_loop().create_task(self._run(arg))

    async def _request_stream(self) -> AsyncIterator[Any]:
        assert self.requests is not None
        while (item := await self.requests.get()) is not _END:
            yield item

    async def _run(self, arg: Any) -> None:
        try:
            if self.method.server_streaming:
                async for item in self.method.fn(arg, self.ctx):
                    await self._write(item)
                self.end(OK)
            else:
                reply = await self.method.fn(arg, self.ctx)
                self._finish(frame(self.method.encode(reply)), OK, None)
        except asyncio.CancelledError:
            if self.expired:
                self.end(DEADLINE_EXCEEDED, "context deadline exceeded")
            elif not self.ctx.cancelled_by_client:
                self.end(CANCELLED, "the server is stopping")
                raise
        except Exception as e:
            self._failed(e)

    def _failed(self, e: Exception) -> None:
        """End the call for what its handler (or sink) raised: CallAborted with its status; any
        other exception is a handler's bug, and the client gets UNKNOWN, as from grpcio."""
        if isinstance(e, CallAborted):
            self.end(_number(e.status), e.details)
            return
        log.error("a gRPC handler failed", exc_info=e)
        self.end(UNKNOWN, f"Unexpected {type(e)}: {e}")

    async def _write(self, item: Any) -> None:
        if self.key < 0:  # ended from outside (a request too large, say): the handler stops here
            raise asyncio.CancelledError
        data = frame(self.method.encode(item))
        self.unsent += len(data)
        if self.unsent < DRAIN_EVERY:
            self.endpoint.queue((self.key, data, -1, None, False))
            return
        self.unsent = 0
        self.drained = asyncio.get_running_loop().create_future()
        self.endpoint.queue((self.key, data, -1, None, True))
        await self.drained

    def _expire(self) -> None:
        self.deadline = None
        self.expired = True
        self.ctx.set_status(grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
        if self.task is not None:
            self.task.cancel()
        else:
            self.end(DEADLINE_EXCEEDED, "context deadline exceeded")

    def end(self, status: int, message: str | None = None) -> None:
        """End the call with this status (once; later ends are ignored)."""
        self._finish(b"", status, message)

    def _finish(self, data: bytes, status: int, message: str | None) -> None:
        if self.key < 0:
            return
        self.endpoint.queue((self.key, data, status, grpc_message(message) if message else None, False))
        self._release()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()  # ended by an event, not by its handler

    def _release(self) -> None:
        if self.key < 0:
            return
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.endpoint.finished(self.key)
        self.key = -1

