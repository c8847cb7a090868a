"""Register a servicer object for one of etcd's gRPC services, straight from the descriptors.

Handlers may return either a protobuf message or already-encoded bytes (a range reply built
from stored KeyValue bytes), so the response serializer accepts both. Methods a servicer does
not define are left out: gRPC answers them UNIMPLEMENTED, as etcd does for unknown methods.

Request bytes that do not parse get what Go's gRPC server answers etcd's clients: INTERNAL
"grpc: error unmarshalling request: ...", with nothing logged; on a client stream the first
such message ends the call INTERNAL "grpc: failed to unmarshal the received message ...". (A deserializer that raises would make grpc answer
UNKNOWN and log a traceback per request, so ours never raises: it hands the handler wrapper an
``Undecodable`` marker instead.)
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf import symbol_database
from google.protobuf.descriptor import ServiceDescriptor

from pyetcd import wire
from pyetcd.api import peer_pb2, rpc_pb2, v3election_pb2, v3lock_pb2

_db = symbol_database.Default()
# every client-facing service by its short name (as in services.py)
DESCRIPTORS: dict[str, ServiceDescriptor] = {  # with the members' own Peer service (transport/peerserver.py)
    **rpc_pb2.DESCRIPTOR.services_by_name, **v3lock_pb2.DESCRIPTOR.services_by_name,
    **v3election_pb2.DESCRIPTOR.services_by_name, **peer_pb2.DESCRIPTOR.services_by_name}
# Go gRPC's words, which etcd's clients see: for a unary request, and for a client-stream message
UNMARSHAL_ERROR = "grpc: error unmarshalling request: "
STREAM_UNMARSHAL_ERROR = "grpc: failed to unmarshal the received message "


class Undecodable:
    """Request bytes that did not parse as the method's request type."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.details = UNMARSHAL_ERROR + reason


class UndecodableRequest(Exception):
    """Raised into a stream handler's request loop by an undecodable message: the call ends INTERNAL."""


def _deserializer(request_type: Any) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return wire.parse(request_type, data)
        except Exception as e:  # DecodeError, or whatever else bad bytes may provoke in a decoder
            return Undecodable(str(e) or type(e).__name__)
    return decode


class _Requests:
    """A client stream's decoded requests; remembers the first undecodable one and stops there."""

    def __init__(self, requests: AsyncIterator[Any]) -> None:
        self._requests = requests
        self.bad: Undecodable | None = None

    def __aiter__(self) -> _Requests:
        return self

    async def __anext__(self) -> Any:
        req = await self._requests.__anext__()
        if isinstance(req, Undecodable):
            self.bad = req
            raise UndecodableRequest(req.reason)
        return req


def _serialize(msg: Any) -> bytes:
    return msg if isinstance(msg, bytes) else msg.SerializeToString()  # type: ignore[no-any-return]


# (method name, request — or the request iterator of a client stream —, context); it aborts
# the call to refuse it (the CRL check, auth: rpc/authguard.py)
CallGuard = Callable[[str, Any, Any], Awaitable[None]]


class MethodStats(Protocol):
    """Counts one method's calls (grpc_server_started_total / handled_total in gateway/metrics.py)."""

    def start(self) -> None: ...

    def done(self, code: str) -> None: ...  # a grpc.StatusCode name


class CallObserver(Protocol):
    def bind(self, service: str, method: str, kind: str) -> MethodStats: ...


def final_code(exc: BaseException | None, context: Any) -> str:
    """The status a call ended with, as a grpc.StatusCode name."""
    if exc is None:
        return "OK"
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"
    code = context.code()  # set by abort (grpc's context, or the gateway's)
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def _observed(fn: Any, stats: MethodStats) -> Any:
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            stats.start()
            try:
                async for item in fn(request, context):
                    yield item
            except BaseException as e:
                stats.done(final_code(e, context))
                raise
            stats.done("OK")
        return stream

    @functools.wraps(fn)
    async def unary(request: Any, context: Any) -> Any:
        stats.start()
        try:
            resp = await fn(request, context)
        except BaseException as e:
            stats.done(final_code(e, context))
            raise
        stats.done("OK")
        return resp
    return unary


async def _allow_all(name: str, request: Any, context: Any) -> None:
    return None


def guarded(fn: Any, name: str, guard: CallGuard, client_streaming: bool) -> Any:
    """Refuse undecodable requests, then run ``guard`` before the handler, in the handler's task
    (so what it learns, the caller, is visible to the handler through context variables)."""
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                await context.abort(grpc.StatusCode.INTERNAL, request.details)
            requests = _Requests(request) if client_streaming else None
            await guard(name, requests or request, context)
            try:
                async for item in fn(requests or request, context):
                    yield item
            except UndecodableRequest:
                pass
            if requests is not None and requests.bad is not None:
                await context.abort(grpc.StatusCode.INTERNAL, STREAM_UNMARSHAL_ERROR + requests.bad.reason)
        return stream

    @functools.wraps(fn)
    async def unary(request: Any, context: Any) -> Any:
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INTERNAL, request.details)
        await guard(name, request, context)
        return await fn(request, context)
    return unary


def kind_of(method: Any) -> str:
    """go-grpc-prometheus's grpc_type label."""
    return {(False, False): "unary", (False, True): "server_stream", (True, False): "client_stream",
            (True, True): "bidi_stream"}[(method.client_streaming, method.server_streaming)]


def wrap_handler(fn: Any, service: ServiceDescriptor, method: Any, guard: CallGuard | None,
                 observer: CallObserver | None) -> Any:
    """A servicer method as every transport calls it: counted, then guarded."""
    fn = guarded(fn, method.name, guard or _allow_all, method.client_streaming)
    if observer is not None:
        fn = _observed(fn, observer.bind(service.full_name, method.name, kind_of(method)))
    return fn


class StreamSink(Protocol):
    """A client stream taken one request at a time as each arrives, in the transport's event
    callback (h2/call.py): no task and no queue between the request and the handler. For the
    peers' raft message streams: without that hop a lone client's put at a follower, which takes
    four peer transits, rose from 0.59 to 0.64 of etcd's. No guard and no observer run: only
    the peer service, which has neither, uses one."""

    def message(self, request: Any) -> None:
        """Take one request; CallAborted ends the call with its status."""
        ...

    def reply(self) -> Any:
        """The call's one reply, once the client finished sending."""
        ...


@dataclass(frozen=True)
class ServedMethod:
    """A method as a transport runs it: wrapped as every transport wraps it (wrap_handler), with
    the decoder and encoder grpc uses (grpcio's handlers and h2/ are both built from these).
    ``sink``, for a client-streaming method: a StreamSink per call (from the call's context),
    which the native transport runs instead of ``fn``."""

    fn: Callable[..., Any]
    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]  # a reply: a message, or bytes already encoded (a range from stored KeyValues)
    client_streaming: bool
    server_streaming: bool
    sink: Callable[[Any], StreamSink] | None = None


def _served(service: ServiceDescriptor, servicer: object, guard: CallGuard | None,
            observer: CallObserver | None) -> Iterator[tuple[str, ServedMethod]]:
    """Each method the servicer defines, by name: wrapped (wrap_handler), with grpc's decoder and encoder."""
    for method in service.methods:
        fn = getattr(servicer, method.name, None)
        if fn is not None:
            yield method.name, ServedMethod(wrap_handler(fn, service, method, guard, observer),
                                            _deserializer(_db.GetSymbol(method.input_type.full_name)), _serialize,
                                            method.client_streaming, method.server_streaming)


def served_methods(services: list[tuple[str, object]], guard: CallGuard | None = None,
                   observer: CallObserver | None = None) -> dict[bytes, ServedMethod]:
    """Every method the servicers define, by its HTTP/2 path (``/etcdserverpb.KV/Range``)."""
    table = {}
    for name, servicer in services:
        service = DESCRIPTORS[name]
        for method_name, served in _served(service, servicer, guard, observer):
            table[f"/{service.full_name}/{method_name}".encode()] = served
    return table


_GRPC_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def generic_handler(service: ServiceDescriptor, servicer: object, guard: CallGuard | None = None,
                    observer: CallObserver | None = None) -> grpc.GenericRpcHandler:
    handlers = {
        name: _GRPC_KINDS[(m.client_streaming, m.server_streaming)](
            m.fn, request_deserializer=m.decode, response_serializer=m.encode)
        for name, m in _served(service, servicer, guard, observer)}
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
