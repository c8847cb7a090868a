"""Watch event delivery of pyetcd next to real etcd: rate, put-to-event latency, memory per watcher.

Both members run side by side (own ports, temp data dirs, mutual TLS); each scenario runs on one,
then the other. N watchers (1, 100, 10,000; spread over up to 100 streams on up to 10
connections) all watch one key:

* rate: puts as fast as 16 writers go; events delivered per second until every watcher has every
  event, and the server's CPU time per delivered event (from /proc), which does not depend on
  how fast this Python client can read;
* latency: puts at a steady rate, each carrying its send time; p50/p99 from put sent to event
  received, over every watcher's copy;
* memory: server RSS growth per idle watcher, over 10,000 watchers on 100 streams.

The client is Python too: against real etcd the rate is often the client's limit (noted in the
table when the client used more CPU than the server). With one watcher the rate is the put
rate and the CPU per event includes the put. Under backlog pyetcd merges a watcher's queued
events into one response (etcd does the same for watchers it catches up), so with 10,000
watchers it sends fewer, larger messages. Compare ratios within one run only.

    .venv/bin/python bench/watch.py [--quick] [--target real|pyetcd|both] [--members 3]

With ``--members 3`` each side is a three-member cluster: the watch streams' connections are
spread over the members and the puts go to the first one, so most events travel put -> leader ->
commit -> another member's apply -> its watchers; server CPU is the sum over the members.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the one shared process harness: tests/support

from pyetcd.api import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from support import CertPaths, Member, pyetcd_unavailable_reason, start_cluster, start_member  # noqa: E402
from support.procstat import cpu_seconds, rss_kib  # noqa: E402
from support.watchclient import aio_channel, create_req  # noqa: E402

RESULTS = ROOT / "bench" / "results"
KINDS = {"real": "etcd", "pyetcd": "pyetcd"}
KEY = b"bench/watched"
_TS = struct.Struct("<d")


@dataclass(frozen=True)
class Scenario:
    watchers: int
    streams: int
    rate_puts: int  # puts in the rate run
    latency_puts: int
    latency_put_rate: float  # puts per second in the latency run


SCENARIOS = [
    Scenario(1, 1, 5000, 400, 100.0),
    Scenario(100, 10, 1000, 200, 50.0),
    Scenario(10_000, 100, 20, 10, 2.0),
]


@dataclass
class Result:
    watchers: int
    events_per_sec: float = 0.0
    server_cpu_us_per_event: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    failure: str | None = None
    notes: list[str] = field(default_factory=list)


class RawStream:
    """A Watch stream whose responses stay bytes unless asked: the client must not be the bottleneck."""

    def __init__(self, ch: grpc.aio.Channel) -> None:
        self.q: asyncio.Queue[rpc_pb2.WatchRequest | None] = asyncio.Queue()
        method = ch.stream_stream("/etcdserverpb.Watch/Watch", request_serializer=rpc_pb2.WatchRequest.SerializeToString,
                                  response_deserializer=None)
        self.call = method(self._gen())

    async def _gen(self):  # type: ignore[no-untyped-def]
        while (r := await self.q.get()) is not None:
            yield r


def server_cpu(members: list[Member]) -> float:
    return sum(cpu_seconds(m.pid or 0) for m in members)


async def open_watchers(members: list[Member], sc: Scenario, key: bytes) -> tuple[list[grpc.aio.Channel], list[RawStream]]:
    chans = [aio_channel(members[i % len(members)]) for i in range(min(10, sc.streams))]
    streams = [RawStream(chans[i % len(chans)]) for i in range(sc.streams)]
    per = sc.watchers // sc.streams
    for s in streams:
        for _ in range(per):
            await s.q.put(create_req(key))
    for s in streams:
        for _ in range(per):
            await s.call.read()  # the created responses
    return chans, streams


async def close_all(chans: list[grpc.aio.Channel], streams: list[RawStream]) -> None:
    for s in streams:
        s.call.cancel()
    for ch in chans:
        await ch.close()


async def rate_run(members: list[Member], sc: Scenario, quick: bool) -> tuple[float, float, float]:
    puts = max(10, sc.rate_puts // 5) if quick else sc.rate_puts
    chans, streams = await open_watchers(members, sc, KEY + b"/rate")
    per = sc.watchers // sc.streams
    total = puts * sc.watchers
    async with aio_channel(members[0]) as wch:
        kv = rpc_pb2_grpc.KVStub(wch)

        async def drain(s: RawStream) -> None:
            want = puts * per  # events: a watcher that fell behind gets several in one response
            while want > 0:
                want -= len(rpc_pb2.WatchResponse.FromString(await s.call.read()).events)

        async def writer(n: int) -> None:
            for _ in range(n):
                await kv.Put(rpc_pb2.PutRequest(key=KEY + b"/rate", value=b"v" * 64))

        cpu0, ccpu0, t0 = server_cpu(members), time.process_time(), time.perf_counter()
        readers = [asyncio.create_task(drain(s)) for s in streams]
        await asyncio.gather(*(writer(puts // 16 + (1 if i < puts % 16 else 0)) for i in range(16)))
        await asyncio.wait_for(asyncio.gather(*readers), 300)
        elapsed = time.perf_counter() - t0
        used, client_cpu = server_cpu(members) - cpu0, time.process_time() - ccpu0
    await close_all(chans, streams)
    return total / elapsed, used / total * 1e6, client_cpu / max(used, 1e-9)


async def latency_run(members: list[Member], sc: Scenario, quick: bool) -> tuple[float, float]:
    puts = max(5, sc.latency_puts // 5) if quick else sc.latency_puts
    chans, streams = await open_watchers(members, sc, KEY + b"/lat")
    per = sc.watchers // sc.streams
    lat: list[float] = []
    async with aio_channel(members[0]) as wch:
        kv = rpc_pb2_grpc.KVStub(wch)

        async def drain(s: RawStream) -> None:
            want = puts * per
            while want > 0:
                raw = await s.call.read()
                now = time.perf_counter()
                evs = rpc_pb2.WatchResponse.FromString(raw).events
                want -= len(evs)
                lat.extend(now - _TS.unpack(ev.kv.value)[0] for ev in evs)

        readers = [asyncio.create_task(drain(s)) for s in streams]
        gap = 1.0 / sc.latency_put_rate
        start = time.perf_counter()
        for i in range(puts):
            await asyncio.sleep(max(0.0, start + i * gap - time.perf_counter()))
            await kv.Put(rpc_pb2.PutRequest(key=KEY + b"/lat", value=_TS.pack(time.perf_counter())))
        await asyncio.wait_for(asyncio.gather(*readers), 300)
    await close_all(chans, streams)
    lat.sort()
    return lat[len(lat) // 2] * 1000, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000


async def memory_per_watcher(member: Member, n: int = 10_000) -> float:
    pid = member.pid or 0
    before = rss_kib(pid)
    chans, streams = await open_watchers([member], Scenario(n, 100, 0, 0, 1.0), KEY + b"/idle")
    await asyncio.sleep(1.0)
    after = rss_kib(pid)
    await close_all(chans, streams)
    return (after - before) * 1024 / n


def run_target(members: list[Member], sc: Scenario, quick: bool) -> Result:
    res = Result(sc.watchers)
    try:
        res.events_per_sec, res.server_cpu_us_per_event, client_ratio = asyncio.run(rate_run(members, sc, quick))
        if client_ratio > 1.0:
            res.notes.append(f"client used {client_ratio:.1f}x the server's CPU: rate is client-bound")
        res.p50_ms, res.p99_ms = asyncio.run(latency_run(members, sc, quick))
    except Exception as e:  # a failed scenario is reported, the bench goes on
        res.failure = f"{type(e).__name__}: {e}"[:300]
    return res


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def print_table(results: dict[str, list[Result]], memory: dict[str, float]) -> None:
    targets = list(results)
    both = len(targets) == 2
    cols = [f"{t} {m}" for t in targets for m in ("ev/s", "cpu us/ev", "p50 ms", "p99 ms")]
    if both:
        cols += [f"{m} py/etcd" for m in ("ev/s", "cpu/ev", "p50", "p99")]
    widths = [max(len(c) + 2, 11) for c in cols]
    head = f"{'watchers':>9}" + "".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))
    print(head)
    print("-" * len(head))
    for i, sc in enumerate(SCENARIOS):
        cells: list[str] = []
        for t in targets:
            r = results[t][i]
            cells += (["FAILED", "", "", ""] if r.failure else
                      [f"{r.events_per_sec:,.0f}", f"{r.server_cpu_us_per_event:.1f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}"])
        if both:
            p, e = results["pyetcd"][i], results["real"][i]
            cells += [_ratio(p.events_per_sec, e.events_per_sec), _ratio(p.server_cpu_us_per_event, e.server_cpu_us_per_event),
                      _ratio(p.p50_ms, e.p50_ms), _ratio(p.p99_ms, e.p99_ms)]
        print(f"{sc.watchers:>9}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    print("memory per idle watcher (server RSS growth / 10,000 watchers): "
          + ", ".join(f"{t} {v:,.0f} B" for t, v in memory.items())
          + (f", ratio py/etcd {_ratio(memory['pyetcd'], memory['real'])}" if both else ""))
    for t in targets:
        for r in results[t]:
            for note in ([r.failure] if r.failure else []) + r.notes:
                print(f"note: {t} / {r.watchers} watchers: {note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a fifth of the puts per scenario")
    ap.add_argument("--target", choices=["real", "pyetcd", "both"], default="both")
    ap.add_argument("--members", type=int, default=1, help="members per side (3: a cluster on each side)")
    args = ap.parse_args(argv)
    targets = ["real", "pyetcd"] if args.target == "both" else [args.target]
    if "pyetcd" in targets and (reason := pyetcd_unavailable_reason()):
        print(f"cannot bench pyetcd: {reason}", file=sys.stderr)
        return 2
    results: dict[str, list[Result]] = {t: [] for t in targets}
    memory: dict[str, float] = {}
    members: dict[str, list[Member]] = {}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="pyetcd-bench-watch-") as tmp:
        certs = CertPaths.create(Path(tmp) / "certs")
        try:
            for t in targets:
                members[t] = (start_cluster(KINDS[t], Path(tmp) / t, certs, size=args.members) if args.members > 1
                              else [start_member(KINDS[t], Path(tmp) / t, certs, name=f"bench-{t}")])
            for t in targets:
                memory[t] = asyncio.run(memory_per_watcher(members[t][0]))
            for sc in SCENARIOS:
                for t in targets:
                    print(f"{sc.watchers:>6} watchers {t:7} ...", end=" ", flush=True, file=sys.stderr)
                    r = run_target(members[t], sc, args.quick)
                    results[t].append(r)
                    print(r.failure or f"{r.events_per_sec:,.0f} ev/s, p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms",
                          file=sys.stderr)
        finally:
            for ms in members.values():
                for m in ms:
                    m.stop()
    print_table(results, memory)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"watch-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(started))}.json"
    out.write_text(json.dumps({"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                               "duration_s": round(time.time() - started, 1), "quick": args.quick,
                               "members": args.members,
                               "memory_bytes_per_idle_watcher": memory,
                               "results": {t: [asdict(r) for r in rs] for t, rs in results.items()}}, indent=2))
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
