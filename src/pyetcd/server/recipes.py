"""What clientv3's concurrency recipes do over the wire, done inside the server: txns through
raft, linearizable ranges, and "wait until these keys are deleted" on the change feed.

The Lock and Election services are built on this exactly as etcd's v3lock/v3election are built
on ``clientv3/concurrency`` (same keys, same txns, same order), so a lock taken through the
Lock service and one taken with ``etcdctl lock`` (client-side recipe) exclude each other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from pyetcd import errors
from pyetcd.api import internal_pb2, kv_pb2, rpc_pb2

from . import kvops

if TYPE_CHECKING:
    from .etcd_server import EtcdServer

DELETE = kv_pb2.Event.DELETE
CREATE = rpc_pb2.RangeRequest.CREATE
SESSION_TTL = 60  # concurrency.defaultSessionTTL


def prefix_end(prefix: bytes) -> bytes:
    """clientv3.GetPrefixRangeEnd: the first key after every key starting with ``prefix``."""
    b = bytearray(prefix)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\x00"


def first_create(prefix: bytes, max_create_rev: int = 0, last: bool = False) -> rpc_pb2.RangeRequest:
    """clientv3.WithFirstCreate / WithLastCreate (+ WithMaxCreateRev) on a prefix."""
    return rpc_pb2.RangeRequest(key=prefix, range_end=prefix_end(prefix), limit=1, sort_target=CREATE,
                                sort_order=rpc_pb2.RangeRequest.DESCEND if last else rpc_pb2.RangeRequest.ASCEND,
                                max_create_revision=max_create_rev)


def create_rev_is(key: bytes, rev: int) -> rpc_pb2.Compare:
    return rpc_pb2.Compare(result=rpc_pb2.Compare.EQUAL, target=rpc_pb2.Compare.CREATE, key=key, create_revision=rev)


def op_put(key: bytes, value: bytes, lease: int) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease))


def op_get(r: rpc_pb2.RangeRequest) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_range=r)


class ClientError(errors.EtcdError):
    """An error as etcd's embedded client hands it to v3lock/v3election: the message kept,
    the gRPC code lost (a plain Go error becomes code Unknown), so clients see the same."""


@contextlib.contextmanager
def _as_client_error() -> Iterator[None]:
    try:
        yield
    except errors.EtcdError as e:
        raise ClientError(e.message) from e


class Recipes:
    """A client of this server's own key space, for recipes running inside it."""

    def __init__(self, server: EtcdServer) -> None:
        self.s = server
        self.feed = server.change_feed
        self._cleanups: set[asyncio.Task[Any]] = set()

    async def session_lease(self, lease: int) -> int:
        """The lease a recipe runs on: the client's, or (lease 0) a new one with the session
        default TTL, as ``concurrency.NewSession`` grants when given no lease."""
        if lease:
            return lease
        req = rpc_pb2.LeaseGrantRequest(ID=self.s.new_lease_id(), TTL=SESSION_TTL)
        with _as_client_error():
            resp: rpc_pb2.LeaseGrantResponse = await self.s.propose(internal_pb2.InternalRequest(lease_grant=req))
        return resp.ID

    async def txn(self, t: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        with _as_client_error():
            resp: rpc_pb2.TxnResponse = await self.s.propose(internal_pb2.InternalRequest(txn=t))
        return resp

    async def delete(self, key: bytes) -> rpc_pb2.DeleteRangeResponse:
        req = internal_pb2.InternalRequest(delete_range=rpc_pb2.DeleteRangeRequest(key=key))
        with _as_client_error():
            resp: rpc_pb2.DeleteRangeResponse = await self.s.propose(req)
        return resp

    def range_now(self, r: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """A read of the published store, with no await: pair it with a subscription."""
        return kvops.execute_range(self.s.kv, r).to_message()

    async def range(self, r: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        await self.linearizable_read()
        return self.range_now(r)

    async def linearizable_read(self) -> None:
        with _as_client_error():
            await self.s.linearizable_read()

    async def wait_deletes(self, prefix: bytes, max_create_rev: int) -> rpc_pb2.ResponseHeader:
        """concurrency.waitDeletes: wait until no key under ``prefix`` created at or before
        ``max_create_rev`` is left, newest first; returns the header of the final read."""
        while True:
            await self.linearizable_read()
            resp = self.range_now(first_create(prefix, max_create_rev, last=True))
            if not resp.kvs:
                return resp.header
            with self.feed.subscribe(resp.kvs[0].key) as sub:  # same step as the read
                while (await sub.next()).type != DELETE:
                    pass

    def cleanup(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` even though the request that needs it was cancelled (client gone)."""
        task = asyncio.get_running_loop().create_task(_quietly(coro))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)


async def _quietly(coro: Coroutine[Any, Any, Any]) -> None:
    with contextlib.suppress(Exception):
        await coro
