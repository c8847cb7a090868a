"""Lease throughput and expiry-storm write latency of pyetcd next to real etcd 3.4.

Scenarios, each run on real etcd then on pyetcd in the same run (compare ratios within a run):
  grant      10,000 LeaseGrant calls, 64 in flight
  keepalive  the 10,000 leases kept alive 3 times each over 10 LeaseKeepAlive streams (pipelined)
  storm      1,000 leases (one key each) due at the same moment; a client writes sequentially
             meanwhile: put latency before and during the storm, and how long the revokes take
The load comes from one Python asyncio gRPC client (the same for both servers), which shares the
2 cores with the server: absolute figures are client-bound in part, ratios are the point.
Results print as a table and go to bench/results/lease-<timestamp>.json.

    .venv/bin/python bench/lease.py [--quick] [--target real|pyetcd|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the one shared process harness: tests/support

from kv import _versions  # noqa: E402  (bench/ is the script's directory: the same record as bench/kv.py)
from pyetcd.api import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from support import CertPaths, Member, pyetcd_unavailable_reason, start_member  # noqa: E402

RESULTS = ROOT / "bench" / "results"
KINDS = {"real": "etcd", "pyetcd": "pyetcd"}
IN_FLIGHT = 64
STREAMS = 10


def aio_channel(m: Member) -> grpc.aio.Channel:
    tls = m.client_tls()
    assert tls.cert and tls.key
    creds = grpc.ssl_channel_credentials(tls.ca.read_bytes(), tls.key.read_bytes(), tls.cert.read_bytes())
    return grpc.aio.secure_channel(m.grpc_target, creds)


async def bounded(n: int, make: Any) -> list[Any]:
    """Run make(i) for i in range(n), IN_FLIGHT at a time; results in order."""
    sem = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> Any:
        async with sem:
            return await make(i)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def grant(lease: rpc_pb2_grpc.LeaseStub, n: int, ttl: int) -> tuple[list[int], float]:
    t0 = time.perf_counter()
    resps = await bounded(n, lambda i: lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=ttl)))
    return [r.ID for r in resps], n / (time.perf_counter() - t0)


async def keepalive(lease: rpc_pb2_grpc.LeaseStub, ids: list[int], rounds: int) -> float:
    async def one_stream(part: list[int]) -> int:
        call = lease.LeaseKeepAlive()
        got = 0
        for _ in range(rounds):
            for lid in part:
                await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lid))
            for _ in part:
                resp = await call.read()
                assert resp.TTL > 0
                got += 1
        await call.done_writing()
        return got

    parts = [ids[i::STREAMS] for i in range(STREAMS)]
    t0 = time.perf_counter()
    total = sum(await asyncio.gather(*(one_stream(p) for p in parts)))
    return total / (time.perf_counter() - t0)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


async def storm(lease: rpc_pb2_grpc.LeaseStub, kv: rpc_pb2_grpc.KVStub, n: int) -> dict[str, float]:
    async def put_latencies(seconds: float) -> list[float]:
        out: list[float] = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            await kv.Put(rpc_pb2.PutRequest(key=b"writer", value=b"x" * 64))
            out.append(time.perf_counter() - t0)
        return out

    before = await put_latencies(2.0)
    ttl = 3
    ids, _ = await grant(lease, n, ttl)
    due = time.perf_counter() + ttl
    await bounded(n, lambda i: kv.Put(rpc_pb2.PutRequest(key=b"storm/%05d" % i, value=b"v", lease=ids[i])))
    during: list[float] = []
    gone_at = None
    start = time.perf_counter()
    while time.perf_counter() < due + 30:
        during += await put_latencies(0.2)
        left = (await kv.Range(rpc_pb2.RangeRequest(key=b"storm/", range_end=b"storm0", count_only=True))).count
        if left == 0:
            gone_at = time.perf_counter()
            break
    storm_lat = during or [0.0]
    return {"put_p50_ms_before": pct(before, 0.5), "put_p99_ms_before": pct(before, 0.99),
            "put_p50_ms_storm": pct(storm_lat, 0.5), "put_p99_ms_storm": pct(storm_lat, 0.99),
            "put_max_ms_storm": max(storm_lat) * 1000, "puts_per_s_storm": len(during) / max(1e-9, (gone_at or time.perf_counter()) - start),
            "all_revoked_s_after_due": (gone_at - due) if gone_at else float("inf"),
            "mean_put_ms_storm": statistics.mean(storm_lat) * 1000}


async def run_all(m: Member, quick: bool) -> dict[str, float]:
    n = 2000 if quick else 10_000
    async with aio_channel(m) as ch:
        lease, kv = rpc_pb2_grpc.LeaseStub(ch), rpc_pb2_grpc.KVStub(ch)
        ids, grants_per_s = await grant(lease, n, 600)
        ka_per_s = await keepalive(lease, ids, 1 if quick else 3)
        out = {"grants_per_s": grants_per_s, "keepalives_per_s": ka_per_s}
        out.update(await storm(lease, kv, 1000))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--target", choices=["real", "pyetcd", "both"], default="both")
    args = ap.parse_args(argv)
    targets = ["real", "pyetcd"] if args.target == "both" else [args.target]
    if "pyetcd" in targets and (reason := pyetcd_unavailable_reason()):
        print(f"skipping pyetcd: {reason}")
        targets.remove("pyetcd")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lease-") as tmp:
        certs = CertPaths.create(Path(tmp) / "certs")
        for t in targets:
            m = start_member(KINDS[t], Path(tmp) / t, certs, name=f"bench-{t}")
            try:
                results[t] = asyncio.run(run_all(m, args.quick))
            finally:
                m.stop()
    keys = list(next(iter(results.values())).keys()) if results else []
    print(f"{'metric':28} " + " ".join(f"{t:>12}" for t in targets) + ("   pyetcd/etcd" if len(targets) == 2 else ""))
    for k in keys:
        row = f"{k:28} " + " ".join(f"{results[t][k]:12.1f}" for t in targets)
        if len(targets) == 2 and results["real"][k]:
            row += f"   {results['pyetcd'][k] / results['real'][k]:10.2f}"
        print(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"lease-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"quick": args.quick, "versions": _versions(), "results": results}, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
