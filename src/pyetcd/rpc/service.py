"""Register a servicer object for one of etcd's gRPC services, straight from the descriptors.

Handlers may return either a protobuf message or already-encoded bytes (a range reply built
from stored KeyValue bytes), so the response serializer accepts both. Methods a servicer does
not define are left out: gRPC answers them UNIMPLEMENTED, as etcd does for unknown methods.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import symbol_database
from google.protobuf.descriptor import ServiceDescriptor

_db = symbol_database.Default()


def _serialize(msg: Any) -> bytes:
    return msg if isinstance(msg, bytes) else msg.SerializeToString()  # type: ignore[no-any-return]


PeerCheck = Callable[[Any], Awaitable[None]]


def _guarded(fn: Any, check: PeerCheck) -> Any:
    """Run ``check(context)`` before the handler (it aborts the call to refuse it)."""
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            await check(context)
            async for item in fn(request, context):
                yield item
        return stream

    @functools.wraps(fn)
    async def unary(request: Any, context: Any) -> Any:
        await check(context)
        return await fn(request, context)
    return unary


def generic_handler(service: ServiceDescriptor, servicer: object,
                    peer_check: PeerCheck | None = None) -> grpc.GenericRpcHandler:
    handlers = {}
    for method in service.methods:
        fn = getattr(servicer, method.name, None)
        if fn is None:
            continue
        if peer_check is not None:
            fn = _guarded(fn, peer_check)
        request_type = _db.GetSymbol(method.input_type.full_name)
        kind = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = kind(fn, request_deserializer=request_type.FromString,
                                     response_serializer=_serialize)
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
