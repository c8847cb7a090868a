"""The one place where pyetcd's errors become gRPC statuses, with etcd's codes and messages."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from pyetcd import errors

log = logging.getLogger("pyetcd.rpc")
T = TypeVar("T")


def status_code(err: errors.EtcdError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, err.code, grpc.StatusCode.UNKNOWN)  # type: ignore[no-any-return]


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: errors.EtcdError) -> None:
    await context.abort(status_code(err), err.message)


def unary(fn: Callable[[Any, Any, Any], Awaitable[T]]) -> Callable[[Any, Any, Any], Awaitable[T]]:
    """Wrap a unary handler: EtcdError -> etcd's status; anything else is logged and UNKNOWN."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: Any) -> T:
        try:
            return await fn(self, request, context)
        except errors.EtcdError as e:
            await abort(context, e)
            raise AssertionError("unreachable") from e

    return wrapper


def stream(fn: Callable[[Any, Any, Any], AsyncIterator[T]]) -> Callable[[Any, Any, Any], AsyncIterator[T]]:
    """Like ``unary`` for handlers that stream responses."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: Any) -> AsyncIterator[T]:
        try:
            async for item in fn(self, request, context):
                yield item
        except errors.EtcdError as e:
            await abort(context, e)

    return wrapper
