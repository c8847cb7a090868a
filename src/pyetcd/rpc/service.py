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


# (method name, request — or the request iterator of a client stream —, context); it aborts
# the call to refuse it (the CRL check, auth: rpc/authguard.py)
CallGuard = Callable[[str, Any, Any], Awaitable[None]]


def _guarded(fn: Any, name: str, guard: CallGuard) -> Any:
    """Run ``guard`` before the handler, in the handler's task (so what it learns, the caller,
    is visible to the handler through context variables)."""
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            await guard(name, request, context)
            async for item in fn(request, context):
                yield item
        return stream

    @functools.wraps(fn)
    async def unary(request: Any, context: Any) -> Any:
        await guard(name, request, context)
        return await fn(request, context)
    return unary


def generic_handler(service: ServiceDescriptor, servicer: object,
                    guard: CallGuard | None = None) -> grpc.GenericRpcHandler:
    handlers = {}
    for method in service.methods:
        fn = getattr(servicer, method.name, None)
        if fn is None:
            continue
        if guard is not None:
            fn = _guarded(fn, method.name, guard)
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
