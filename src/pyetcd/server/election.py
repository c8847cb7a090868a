"""The Election service's recipe: etcd's ``concurrency.Election`` run inside the server.

Candidates put ``<name>/<lease hex>`` (value = proposal) on their lease; the key with the
lowest create revision is the leader. A leader is identified by (key, create revision), so
proclaim and resign act only while that very key still exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pyetcd import errors
from pyetcd.api import kv_pb2, rpc_pb2

from .changefeed import Subscription
from .recipes import Recipes, create_rev_is, first_create, op_get, op_put, prefix_end

PUT, DELETE = kv_pb2.Event.PUT, kv_pb2.Event.DELETE


class ErrElectionNotLeader(errors.EtcdError):
    """concurrency.ErrElectionNotLeader, which etcd's gRPC layer returns as code Unknown."""

    message = "election: not leader"


class ErrElectionNoLeader(errors.EtcdError):
    message = "election: no leader"


class ErrMissingLeaderKey(errors.EtcdError):
    message = '"leader" field must be provided'


@dataclass
class LeaderKey:
    name: bytes
    key: bytes
    rev: int
    lease: int


async def campaign(r: Recipes, name: bytes, lease: int, value: bytes) -> tuple[rpc_pb2.ResponseHeader, LeaderKey]:
    """Block until elected; returns the campaign txn's header and the leader key."""
    lease = await r.session_lease(lease)
    prefix = name + b"/"
    key = prefix + format(lease, "x").encode()
    resp = await r.txn(rpc_pb2.TxnRequest(
        compare=[create_rev_is(key, 0)], success=[op_put(key, value, lease)],
        failure=[op_get(rpc_pb2.RangeRequest(key=key))]))
    leader = LeaderKey(name, key, resp.header.revision, lease)
    if not resp.succeeded:  # campaigning again with the same lease: keep the old key's place
        kv = resp.responses[0].response_range.kvs[0]
        leader.rev = kv.create_revision
        if kv.value != value:
            try:
                await proclaim(r, leader, value)
            except errors.EtcdError:
                await resign(r, leader)
                raise
    try:
        await r.wait_deletes(prefix, leader.rev - 1)
    except asyncio.CancelledError:
        r.cleanup(resign(r, leader))  # client gone: withdraw the candidacy, as Campaign does
        raise
    return resp.header, leader


async def proclaim(r: Recipes, leader: LeaderKey, value: bytes) -> rpc_pb2.ResponseHeader:
    resp = await r.txn(rpc_pb2.TxnRequest(compare=[create_rev_is(leader.key, leader.rev)],
                                          success=[op_put(leader.key, value, leader.lease)]))
    if not resp.succeeded:
        raise ErrElectionNotLeader()
    return resp.header


async def resign(r: Recipes, leader: LeaderKey) -> rpc_pb2.ResponseHeader:
    delete = rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=leader.key))
    resp = await r.txn(rpc_pb2.TxnRequest(compare=[create_rev_is(leader.key, leader.rev)], success=[delete]))
    return resp.header


async def leader(r: Recipes, name: bytes) -> rpc_pb2.RangeResponse:
    resp = await r.range(first_create(name + b"/"))
    if not resp.kvs:
        raise ErrElectionNoLeader()
    return resp


async def observe(r: Recipes, name: bytes) -> AsyncIterator[tuple[rpc_pb2.ResponseHeader, kv_pb2.KeyValue]]:
    """The leader, then every change of it: new values it proclaims, and each new leader
    after the current one's key is deleted (concurrency.Election.Observe)."""
    prefix = name + b"/"
    await r.linearizable_read()
    with r.feed.subscribe(prefix, prefix_end(prefix)) as sub:
        while True:
            resp = r.range_now(first_create(prefix))  # same step as the subscription / last event
            seen = resp.header.revision
            if resp.kvs:
                current = resp.kvs[0]
                yield resp.header, current
            else:
                current = await _first_put(sub, seen)
                yield _header(current.mod_revision), current
            while True:  # follow this leader's key until it is deleted
                ch = await sub.next()
                if ch.rev <= seen or ch.key != current.key:
                    continue
                if ch.type == DELETE:
                    break
                current = kv_pb2.KeyValue.FromString(ch.kv)
                yield _header(ch.rev), current


async def _first_put(sub: Subscription, after: int) -> kv_pb2.KeyValue:
    """Wait for any put under the prefix, as Observe does while there is no leader."""
    while True:
        ch = await sub.next()
        if ch.rev > after and ch.type == PUT:
            return kv_pb2.KeyValue.FromString(ch.kv)


def _header(rev: int) -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(revision=rev)
