"""The Lock service's recipe: etcd's ``concurrency.Mutex`` run inside the server.

Waiters put ``<name>/<lease hex>`` on their lease; the key with the lowest create revision
holds the lock, and each waiter waits only for the deletion of keys created before its own
(FIFO, no thundering herd). Release is a delete of the key, or the lease's expiry.
"""

from __future__ import annotations

import asyncio

from pyetcd.api import rpc_pb2

from .recipes import Recipes, create_rev_is, first_create, op_get, op_put


async def lock(r: Recipes, name: bytes, lease: int) -> tuple[rpc_pb2.ResponseHeader, bytes]:
    """Block until the lock is held; returns (header, the lock key)."""
    lease = await r.session_lease(lease)
    prefix = name + b"/"
    my_key = prefix + format(lease, "x").encode()
    owner = op_get(first_create(prefix))
    resp = await r.txn(rpc_pb2.TxnRequest(
        compare=[create_rev_is(my_key, 0)],
        success=[op_put(my_key, b"", lease), owner],
        failure=[op_get(rpc_pb2.RangeRequest(key=my_key)), owner]))
    my_rev = resp.header.revision
    if not resp.succeeded:  # this lease already waits for (or holds) the lock: reuse its key
        my_rev = resp.responses[0].response_range.kvs[0].create_revision
    holders = resp.responses[1].response_range.kvs
    if not holders or holders[0].create_revision == my_rev:
        return resp.header, my_key
    try:
        header = await r.wait_deletes(prefix, my_rev - 1)
    except (asyncio.CancelledError, Exception):
        r.cleanup(r.delete(my_key))  # give up our place in the queue, as Mutex.Lock does
        raise
    return header, my_key


async def unlock(r: Recipes, key: bytes) -> rpc_pb2.ResponseHeader:
    return (await r.delete(key)).header
