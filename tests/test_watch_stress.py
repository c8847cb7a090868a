"""Stress: thousands of watchers on one pyetcd member while puts run, plus one client that never reads.

Every watcher must receive every matching event exactly once, in revision order; the stalled
stream must not hold up the others, must not grow the server's memory without bound, and once
it reads again it must get all its events (caught up from history). The full scale (10,000
watchers over 100 streams, 10,000 puts) is marked slow; the default suite runs a tenth of it.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support import Member
from support.procstat import rss_kib
from support.watchclient import WatchConn, aio_channel

N_KEYS = 1000
VALUE = b"x" * 200


@dataclass
class Scale:
    watchers: int
    streams: int
    puts: int


def key(i: int) -> bytes:
    return b"k%03d" % i


def spec(g: int) -> tuple[bytes, bytes]:
    """Watcher g: one in ten watches a ten-key prefix, the rest a single key."""
    if g % 10 == 9:
        p = b"k%02d" % (g % 100)
        return p, p[:-1] + bytes([p[-1] + 1])
    return key(g % N_KEYS), b""


async def stress(m: Member, scale: Scale) -> dict[str, float]:
    per_stream = scale.watchers // scale.streams
    async with aio_channel(m) as ch, aio_channel(m) as slow_ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        streams = [WatchConn(ch) for _ in range(scale.streams)]
        ids: list[list[tuple[int, bytes, bytes]]] = []
        for si, s in enumerate(streams):
            mine = []
            for j in range(per_stream):
                k, end = spec(si * per_stream + j)
                mine.append(((await s.create(k, end)).watch_id, k, end))
            ids.append(mine)
        slow = WatchConn(slow_ch)
        await slow.create(b"k", b"l")
        slow.pause_reading()  # from now on this client never reads
        rss_before = rss_kib(m.pid or 0)

        revs: dict[bytes, list[int]] = defaultdict(list)
        order = list(range(scale.puts))
        t0 = time.monotonic()

        async def writer(w: int) -> None:
            for n in order[w::20]:
                k = key((n * 7919) % N_KEYS)
                resp = await kv.Put(rpc_pb2.PutRequest(key=k, value=VALUE))
                revs[k].append(resp.header.revision)

        await asyncio.gather(*(writer(w) for w in range(20)))
        t_puts = time.monotonic() - t0
        last_rev = max(r for rs in revs.values() for r in rs)
        expected = {k: sorted(v) for k, v in revs.items()}

        def want(k: bytes, end: bytes) -> list[int]:
            if not end:
                return expected.get(k, [])
            return sorted(r for kk, rs in expected.items() if k <= kk < end for r in rs)

        total = sum(len(want(k, e)) for mine in ids for _, k, e in mine)
        deadline = time.monotonic() + 120
        while sum(len(r.events) for s in streams for r in s.log) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        t_all = time.monotonic() - t0
        rss_after = rss_kib(m.pid or 0)

        for si, s in enumerate(streams):
            got: dict[int, list[int]] = defaultdict(list)
            for r in s.log:
                got[r.watch_id].extend(e.kv.mod_revision for e in r.events)
            for wid, k, e in ids[si]:
                assert got[wid] == want(k, e), f"stream {si} watcher {wid} ({k!r}, {e!r})"

        # the stalled client reads again: everything, once, in order
        slow.resume_reading()
        slow_want = sorted(r for rs in expected.values() for r in rs)
        deadline = time.monotonic() + 120
        while sum(len(r.events) for r in slow.log) < len(slow_want) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert [e.kv.mod_revision for r in slow.log for e in r.events] == slow_want
        assert slow_want[-1] == last_rev
        for s in [*streams, slow]:
            await s.close()
    return {"puts_s": t_puts, "all_delivered_s": t_all, "events": total, "rss_growth_mib": (rss_after - rss_before) / 1024}


def _run(member_factory: Callable[..., Member], scale: Scale) -> None:
    m = member_factory("pyetcd")
    stats = asyncio.run(stress(m, scale))
    print(f"\n{scale}: {stats}")
    # the others finished while one client never read: delivery kept up with the writes
    assert stats["all_delivered_s"] < stats["puts_s"] + 60
    # the stalled stream's backlog is bounded (a few MiB of queued responses), not all its events
    assert stats["rss_growth_mib"] < 200


def test_watch_stress_small(member_factory: Callable[..., Member]) -> None:
    _run(member_factory, Scale(watchers=1000, streams=10, puts=1000))


@pytest.mark.slow
def test_watch_stress_10k_watchers(member_factory: Callable[..., Member]) -> None:
    _run(member_factory, Scale(watchers=10_000, streams=100, puts=10_000))
