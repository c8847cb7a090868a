"""The Watch stream's protocol details over gRPC, checked on real etcd and pyetcd alike.

Each test states etcd's answer as literal fields and runs against both servers, so a pass on
real etcd proves the expectation and a pass on pyetcd proves the match.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from pyetcd.api import kv_pb2, rpc_pb2, rpc_pb2_grpc
from support import Member
from support.watchclient import WatchConn, aio_channel, cancel_req, progress_req

KINDS = ["etcd", "pyetcd"]
NOPUT = rpc_pb2.WatchCreateRequest.NOPUT
NODELETE = rpc_pb2.WatchCreateRequest.NODELETE


def run(coro: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
    asyncio.run(asyncio.wait_for(coro(*args), 60))


def events(resps: list[rpc_pb2.WatchResponse], wid: int) -> list[tuple[str, bytes, bytes, int]]:
    return [(kv_pb2.Event.EventType.Name(e.type), e.kv.key, e.kv.value, e.kv.mod_revision)
            for r in resps if r.watch_id == wid for e in r.events]


async def put(kv: rpc_pb2_grpc.KVStub, key: bytes, value: bytes = b"v") -> int:
    resp = await kv.Put(rpc_pb2.PutRequest(key=key, value=value))
    return int(resp.header.revision)


@pytest.mark.parametrize("kind", KINDS)
def test_created_ids_duplicates_and_cancel(member_factory: Callable[..., Member], kind: str) -> None:
    async def body(m: Member) -> None:
        async with aio_channel(m) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            rev = await put(kv, b"a")
            w = WatchConn(ch)
            c0 = await w.create(b"a")
            assert (c0.created, c0.canceled, c0.watch_id, c0.header.revision) == (True, False, 0, rev)
            assert (await w.create(b"b", watch_id=2)).watch_id == 2
            assert (await w.create(b"c")).watch_id == 1
            assert (await w.create(b"c")).watch_id == 3  # the auto id skips 2, taken by the client
            dup = await w.create(b"d", watch_id=2)
            assert (dup.watch_id, dup.created, dup.canceled, dup.cancel_reason) == (
                -1, True, True, "mvcc: duplicate watch ID provided on the WatchStream")
            bad = await w.create(b"z", b"a")
            assert (bad.watch_id, bad.canceled, bad.cancel_reason) == (-1, True, "mvcc: watcher range is empty")
            start = len(w.log)
            await w.send(cancel_req(99))  # unknown: etcd says nothing
            await w.send(cancel_req(0))
            _, cr = await w.wait_for(lambda r: r.canceled, start)
            assert (cr.watch_id, cr.created, cr.header.revision, cr.cancel_reason) == (0, False, rev, "")
            assert len(w.log) == start + 1
            rev2 = await put(kv, b"a")  # canceled: nothing arrives
            rev3 = await put(kv, b"b")
            _, ev = await w.wait_for(lambda r: bool(r.events), start)
            assert (ev.watch_id, ev.header.revision, events([ev], 2)) == (2, rev3, [("PUT", b"b", b"v", rev3)])
            assert rev2 == rev3 - 1 and all(not r.events or r.watch_id == 2 for r in w.log)
            await w.close()

    run(body, member_factory(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_ranges_filters_txn_and_prev_kv(member_factory: Callable[..., Member], kind: str) -> None:
    async def body(m: Member) -> None:
        async with aio_channel(m) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            w = WatchConn(ch)
            all_keys = (await w.create(b"\x00", b"\x00")).watch_id  # range_end \0: every key >= key
            from_m = (await w.create(b"m", b"\x00")).watch_id
            no_put = (await w.create(b"k", b"l", filters=(NOPUT,))).watch_id
            no_del = (await w.create(b"k", b"l", filters=(NODELETE,), prev_kv=True)).watch_id
            r1 = await put(kv, b"k1", b"one")
            txn = await kv.Txn(rpc_pb2.TxnRequest(success=[
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k1", value=b"two")),
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k2", value=b"x")),
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"z", value=b"y"))]))
            r2 = txn.header.revision
            r3 = (await kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"k1"))).header.revision
            await w.wait_for(lambda r: r.watch_id == all_keys and r.header.revision == r3)
            await w.idle(0.3)
            txn_resps = [r for r in w.log if r.watch_id == all_keys and r.header.revision == r2]
            assert len(txn_resps) == 1 and len(txn_resps[0].events) == 3  # one txn, one response
            assert events(w.log, all_keys) == [("PUT", b"k1", b"one", r1), ("PUT", b"k1", b"two", r2),
                                               ("PUT", b"k2", b"x", r2), ("PUT", b"z", b"y", r2),
                                               ("DELETE", b"k1", b"", r3)]
            assert events(w.log, from_m) == [("PUT", b"z", b"y", r2)]
            assert events(w.log, no_put) == [("DELETE", b"k1", b"", r3)]
            assert events(w.log, no_del) == [("PUT", b"k1", b"one", r1), ("PUT", b"k1", b"two", r2),
                                             ("PUT", b"k2", b"x", r2)]
            prevs = [(e.kv.key, e.prev_kv.value) for r in w.log if r.watch_id == no_del for e in r.events]
            assert prevs == [(b"k1", b""), (b"k1", b"one"), (b"k2", b"")]
            assert not any(e.HasField("prev_kv") for r in w.log if r.watch_id == all_keys for e in r.events)
            await w.close()

    run(body, member_factory(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_history_compaction_and_progress(member_factory: Callable[..., Member], kind: str) -> None:
    async def body(m: Member) -> None:
        async with aio_channel(m) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            revs = [await put(kv, b"h", str(i).encode()) for i in range(6)]
            await kv.Compact(rpc_pb2.CompactionRequest(revision=revs[2]))
            w = WatchConn(ch)
            c = await w.create(b"h", start_revision=revs[1])
            assert (c.created, c.canceled, c.header.revision) == (True, False, revs[-1])
            _, gone = await w.wait_for(lambda r: r.watch_id == c.watch_id and r.canceled)
            assert (gone.compact_revision, gone.header.revision, gone.created, list(gone.events)) == (
                revs[2], 0, False, [])
            ok = await w.create(b"h", start_revision=revs[2])
            _, got = await w.wait_for(lambda r: r.watch_id == ok.watch_id and bool(r.events))
            assert [e.kv.mod_revision for e in got.events] == revs[2:]
            assert got.header.revision == revs[-1]
            fut = await w.create(b"h", start_revision=revs[-1] + 2)  # future: waits for it
            later = [await put(kv, b"h", b"later") for _ in range(3)]
            await w.wait_for(lambda r: r.watch_id == fut.watch_id and r.header.revision == later[-1])
            assert events(w.log, fut.watch_id) == [("PUT", b"h", b"later", r) for r in later[1:]]
            start = len(w.log)
            await w.send(progress_req())
            _, p = await w.wait_for(lambda r: not r.events and not r.created, start)
            assert (p.watch_id, p.header.revision, p.canceled) == (-1, later[-1], False)
            await w.close()

    run(body, member_factory(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_progress_notify_interval(member_factory: Callable[..., Member], kind: str) -> None:
    async def body(m: Member) -> None:
        async with aio_channel(m) as ch:
            rev = await put(rpc_pb2_grpc.KVStub(ch), b"p")
            w = WatchConn(ch)
            wid = (await w.create(b"p", progress_notify=True)).watch_id
            _, p = await w.wait_for(lambda r: not r.created, timeout=5)
            assert (p.watch_id, p.header.revision, list(p.events)) == (wid, rev, [])
            await w.close()

    run(body, member_factory(kind, extra_args=("--experimental-watch-progress-notify-interval", "1s")))


@pytest.mark.parametrize("kind", KINDS)
def test_fragment_large_responses(member_factory: Callable[..., Member], kind: str) -> None:
    big = 1024 * 1024

    async def body(m: Member) -> None:
        async with aio_channel(m) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            revs = [await put(kv, b"f%d" % i, bytes([65 + i]) * big) for i in range(5)]
            w = WatchConn(ch)
            frag = (await w.create(b"f", b"g", start_revision=revs[0], fragment=True)).watch_id
            whole = (await w.create(b"f", b"g", start_revision=revs[0])).watch_id
            await w.wait_for(lambda r: r.watch_id == whole and bool(r.events), timeout=20)
            await w.wait_for(lambda r: r.watch_id == frag and bool(r.events) and not r.fragment, timeout=20)
            pieces = [r for r in w.log if r.watch_id == frag and r.events]
            # limit 1.5 MiB + 512 KiB: two 1 MiB events per piece would pass it, so one each
            assert [(len(r.events), r.fragment) for r in pieces] == [(1, True)] * 4 + [(1, False)]
            assert [e.kv.mod_revision for r in pieces for e in r.events] == revs
            assert [len(r.events) for r in w.log if r.watch_id == whole and r.events] == [5]
            await w.close()

    run(body, member_factory(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_replay_after_restart(member_factory: Callable[..., Member], kind: str) -> None:
    m = member_factory(kind)

    async def write() -> None:
        async with aio_channel(m) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            for i in range(3):
                await put(kv, b"r", b"%d" % i)
            await kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"r"))

    async def replay() -> None:
        async with aio_channel(m) as ch:
            w = WatchConn(ch)
            wid = (await w.create(b"r", start_revision=1, prev_kv=True)).watch_id
            _, got = await w.wait_for(lambda r: bool(r.events))
            assert events([got], wid) == [("PUT", b"r", b"0", 2), ("PUT", b"r", b"1", 3), ("PUT", b"r", b"2", 4),
                                          ("DELETE", b"r", b"", 5)]
            assert [e.prev_kv.value for e in got.events] == [b"", b"0", b"1", b"2"]
            await w.close()

    run(write)
    m.restart()
    run(replay)
