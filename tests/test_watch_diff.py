"""Differential watch test: the same seeded writes and watchers against real etcd 3.4 and pyetcd.

Watchers open on several streams at random start revisions (past, current, future), over single
keys, prefixes, ranges, from-key and all keys, with filters and prev_kv, before and after
compactions; some are canceled. One stream stops reading for the middle third of the run while
large values are written, so the servers park it (etcd's victims) and catch it up afterwards.
Every watcher's responses are reduced to a trace (its created response, then every event with
every KeyValue field and prev_kv, then how it ended) and the traces of the two servers are
compared event by event. Header revisions of catch-up responses
depend on when the server caught the watcher up, so only the created responses' are compared;
on both servers every event response must carry a header revision >= its events' and keep the
events of one revision (txn) together.

Seeds: a fixed one plus a fresh random one per run (in the test id and the failure message);
replay with ``WATCH_DIFF_SEED=<seed>``; ``WATCH_DIFF_STEPS`` sets the length (default 300).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support import Member
from support.watchclient import WatchConn, aio_channel, cancel_req

FIXED_SEED = 20261127
N_STEPS = int(os.environ.get("WATCH_DIFF_STEPS", "300"))
N_STREAMS = 4
SLOW = N_STREAMS - 1  # this stream stops reading for the middle third of the run
BIG = 128 * 1024  # repeats of a short string: a value of a few hundred KiB
KEYS = [b"a", b"a1", b"a2", b"ab", b"b", b"b/x", b"b/y", b"c", b"d\xff", b"e"]
PREFIXES = [b"a", b"b/", b"d", b""]  # b"": every key
NOPUT = rpc_pb2.WatchCreateRequest.NOPUT
NODELETE = rpc_pb2.WatchCreateRequest.NODELETE


def _seeds() -> list[int]:
    if env := os.environ.get("WATCH_DIFF_SEED"):
        return [int(s) for s in env.split(",") if s.strip()]
    return [FIXED_SEED, random.SystemRandom().randrange(1, 2**31)]


@dataclass
class Trace:
    spec: dict[str, Any]
    stream: int
    created: tuple[Any, ...] = ()
    events: list[tuple[Any, ...]] = field(default_factory=list)
    ends: list[tuple[Any, ...]] = field(default_factory=list)  # compacted and/or canceled


def _event(e: Any) -> tuple[Any, ...]:
    kv = (e.kv.key, e.kv.value, e.kv.create_revision, e.kv.mod_revision, e.kv.version, e.kv.lease)
    prev = (e.prev_kv.key, e.prev_kv.value, e.prev_kv.mod_revision, e.prev_kv.version) if e.HasField("prev_kv") else None
    return (e.type, *kv, prev)


def _spec(rng: random.Random, cur: int) -> dict[str, Any]:
    shape = rng.choice(["key", "key", "prefix", "range", "from"])
    if shape == "key":
        key, end = rng.choice(KEYS), b""
    elif shape == "prefix":
        p = rng.choice(PREFIXES)
        key, end = (p, p[:-1] + bytes([p[-1] + 1])) if p else (b"\x00", b"\x00")
    elif shape == "range":
        a, b = sorted(rng.sample(KEYS, 2))
        key, end = a, b
    else:
        key, end = rng.choice(KEYS), b"\x00"
    roll = rng.random()
    start = 0 if roll < 0.35 else (rng.randint(1, cur) if roll < 0.85 else cur + rng.randint(1, 3))
    filters = rng.choice([(), (), (), (NOPUT,), (NODELETE,)])
    wid = rng.choice([0, 0, 0, 0, rng.randint(100, 103)])
    return {"key": key, "range_end": end, "start_revision": start, "filters": filters,
            "prev_kv": rng.random() < 0.3, "watch_id": wid}


async def _write(kv: rpc_pb2_grpc.KVStub, rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.65:
        resp = await kv.Put(rpc_pb2.PutRequest(key=rng.choice(KEYS), value=b"v%d" % rng.randrange(1000)))
    elif roll < 0.78:
        resp = await kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=rng.choice(KEYS)))
    elif roll < 0.83:
        p = rng.choice(PREFIXES[:3])
        resp = await kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=p, range_end=p[:-1] + bytes([p[-1] + 1])))
    else:
        ops = []
        for k in rng.sample(KEYS, rng.randint(2, 4)):
            if rng.random() < 0.75:
                ops.append(rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=b"t%d" % rng.randrange(99))))
            else:
                ops.append(rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=k)))
        resp = await kv.Txn(rpc_pb2.TxnRequest(success=ops))
    return int(resp.header.revision)


async def _settle(streams: list[WatchConn], quiet: float) -> None:
    await asyncio.gather(*(s.idle(quiet) for s in streams))


async def scenario(m: Member, seed: int) -> list[Trace]:
    rng = random.Random(seed)
    async with aio_channel(m) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        streams = [WatchConn(ch) for _ in range(N_STREAMS)]
        traces: list[Trace] = []
        created_at: dict[tuple[int, int], int] = {}  # (stream, log index of created response) -> trace
        live: list[tuple[int, int]] = []  # (trace, watch id)
        cur, compacted, compactions = 1, 0, 0
        slow = streams[SLOW]
        await slow.create(b"\x00", b"\x00", prev_kv=True)  # sees every write, big ones too
        created_at[(SLOW, 0)] = len(traces)
        traces.append(Trace({"key": b"\x00", "range_end": b"\x00", "prev_kv": True}, SLOW))
        for step in range(N_STEPS):
            if step == N_STEPS // 3:
                slow.pause_reading()  # a client that stops reading: the server must park, not block
            elif step == 2 * N_STEPS // 3:
                slow.resume_reading()
            paused = N_STEPS // 3 <= step < 2 * N_STEPS // 3
            usable = [i for i in range(N_STREAMS) if not (paused and i == SLOW)]
            roll = rng.random()
            if roll < 0.70:
                if paused and rng.random() < 0.25:  # megabytes the stalled stream cannot take
                    resp = await kv.Put(rpc_pb2.PutRequest(key=rng.choice(KEYS), value=b"%d" % step * BIG))
                    cur = max(cur, resp.header.revision)
                else:
                    cur = max(cur, await _write(kv, rng))
            elif roll < 0.90:
                si = rng.choice(usable)
                spec = _spec(rng, cur)
                s = streams[si]
                start = len(s.log)
                await s.create(**spec)
                idx = await s.wait_for(lambda r: r.created, start)  # (the one create() waited for)
                created_at[(si, idx[0])] = len(traces)
                traces.append(Trace(spec, si))
                if idx[1].watch_id != -1:
                    live.append((len(traces) - 1, idx[1].watch_id))
            elif roll < 0.95 and (choices := [x for x in live if traces[x[0]].stream in usable]):
                ti, wid = choices[rng.randrange(len(choices))]
                live.remove((ti, wid))
                s = streams[traces[ti].stream]
                await _settle(streams, 0.15)  # etcd may drop a canceled watcher's unsent events
                start = len(s.log)
                await s.send(cancel_req(wid))
                await s.wait_for(lambda r, w=wid: r.canceled and r.watch_id == w, start)
            elif roll >= 0.95 and not paused and compactions < 3 and cur > compacted + 1:
                # (not while a client is stalled: etcd sends a victim the events it already
                # holds before checking compaction, pyetcd's parked watchers hold none)
                await _settle(streams, 0.3)  # let etcd's 100 ms catch-up loop finish first
                compacted = rng.randint(compacted + 1, cur)
                compactions += 1
                await kv.Compact(rpc_pb2.CompactionRequest(revision=compacted))
        await _settle(streams, 1.0)
        for s in streams:
            await s.close()
    return _traces(streams, traces, created_at)


def _traces(streams: list[WatchConn], traces: list[Trace], created_at: dict[tuple[int, int], int]) -> list[Trace]:
    for si, s in enumerate(streams):
        by_id: dict[int, Trace] = {}
        for i, r in enumerate(s.log):
            if r.created:
                t = traces[created_at[(si, i)]]
                t.created = (r.watch_id, r.canceled, r.cancel_reason, r.header.revision)
                if not r.canceled:
                    by_id[r.watch_id] = t
                continue
            if r.watch_id == -1:
                continue  # progress
            t = by_id[r.watch_id]
            revs = [e.kv.mod_revision for e in r.events]
            assert revs == sorted(revs) and (not revs or r.header.revision >= revs[-1]), r
            if t.events and revs:
                assert t.events[-1][4] < revs[0], f"a revision split over responses, or out of order: {r}"
            t.events.extend(_event(e) for e in r.events)
            if r.canceled:  # a compacted watcher keeps its id until the client cancels it, as in etcd
                t.ends.append(("compacted" if r.compact_revision else "canceled", r.compact_revision, r.cancel_reason))
                if not r.compact_revision:
                    del by_id[r.watch_id]
    return traces


@pytest.mark.parametrize("seed", _seeds(), ids=lambda s: f"seed{s}")
def test_watch_streams_match_real_etcd(member_factory: Callable[..., Member], seed: int) -> None:
    ref = asyncio.run(scenario(member_factory("etcd"), seed))
    got = asyncio.run(scenario(member_factory("pyetcd"), seed))
    assert len(ref) == len(got), f"seed {seed}: {len(ref)} watchers on etcd, {len(got)} on pyetcd"
    n_events = sum(len(t.events) for t in ref)
    assert n_events > 50, f"seed {seed}: too few events ({n_events}) to mean anything"
    ends = [e[0] for t in ref for e in t.ends]
    print(f"seed {seed}: {len(ref)} watchers, {n_events} events, {ends.count('compacted')} compacted, "
          f"{ends.count('canceled')} canceled")
    for i, (r, g) in enumerate(zip(ref, got, strict=True)):
        where = f"seed {seed} (replay: WATCH_DIFF_SEED={seed}), watcher #{i} {r.spec} on stream {r.stream}"
        assert g.created == r.created, f"{where}: created {g.created} != etcd's {r.created}"
        for j, (er, eg) in enumerate(zip(r.events, g.events, strict=False)):
            assert eg == er, f"{where}: event #{j} {eg} != etcd's {er}"
        assert len(g.events) == len(r.events), f"{where}: {len(g.events)} events != etcd's {len(r.events)}"
        assert g.ends == r.ends, f"{where}: ended {g.ends} != etcd's {r.ends}"
