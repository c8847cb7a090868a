"""Put and range throughput and p99 latency of pyetcd next to real etcd, with etcd's own benchmark tool.

Both members run side by side in the same run (own ports, own temp data dirs, mutual TLS) and each
scenario runs on one, then the other, so machine load drifts hit both alike; compare ratios within
one run only. Results print as a table and go to bench/results/kv-<timestamp>.json.

    .venv/bin/python bench/kv.py [--quick] [--target real|pyetcd|both] [--members 3] [--variant NAME:VAR=VALUE]
                                 [--rounds N] [--only SUBSTRING]

``--rounds N`` runs every scenario N times, the targets in turn and in reverse order every other
round; the table shows medians, and each ratio to etcd is also printed round by round with its
median. One pass moves by about 5 % from run to run on these machines, so a claim near a target
wants several rounds. ``--only`` keeps the scenarios whose name contains it.

``--variant NAME:VAR=VALUE`` adds a target, pyetcd started with that environment, measured in
the same rounds: an A/B of a server option in one run; repeatable. (Issue 13 measured grpc's
threaded server this way, behind a switch since removed: it lost. uvloop, which lost nothing
but won nothing clear then, won once gRPC's EventEngine was off: ``--variant
asyncio:PYETCD_EVENT_LOOP=asyncio`` measures it again. The node loop's group commit is measured
against its absence with ``--variant off:PYETCD_GROUP_COMMIT_MS=0``, a lone client's inline
turns with ``--variant thread:PYETCD_INLINE_TURNS=0``, linearizable read rounds that wait
for company (server/read_index.py) with ``--variant nohold:PYETCD_READ_HOLD_MS=0``, and a
leader's commit news sent at once, as etcd does, with ``--variant eager:PYETCD_COMMIT_NEWS_MS=0``,
and a lone client's store transaction committed every turn instead of held open (server/node_loop.py)
with ``--variant nohold:PYETCD_STORE_HOLD_MS=0``.
The client port's gRPC served by grpc.aio instead of the native transport (h2/):
``--variant grpcio:PYETCD_CLIENT_GRPC=grpcio``; the peer streams and peer server on grpc.aio
instead of the native ones (transport/links.py, transport/peerserver.py), with ``--members 3``:
``--variant grpcio:PYETCD_PEER_GRPC=grpcio``; the peer streams' messages always handed to the
HTTP/2 thread instead of written by the sender when that thread is idle:
``--variant queued:PYETCD_H2_DIRECT=0``.)

With ``--members 3`` each side is a three-member cluster (peer mutual TLS) and the benchmark's
clients spread over all three endpoints, as etcd's own performance guide measures clusters.
``--at leader`` (or ``follower``) aims them all at the leader (or one follower) instead: the two
paths cost a cluster differently (a follower forwards puts and asks the leader for read rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the one shared process harness: tests/support

from pyetcd.api import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from support import CertPaths, Member, grpc_channel, pyetcd_unavailable_reason, start_cluster  # noqa: E402
from support.cluster import wait_leader  # noqa: E402

BENCHMARK = os.environ.get("ETCD_BENCHMARK", str(ROOT.parent / "shared" / "tools" / "etcd-benchmark"))
RESULTS = ROOT / "bench" / "results"
RANGE_KEY = "bench-range-key"
VALUE_SIZE = 256
SCENARIO_TIMEOUT = 40.0  # keeps the whole bench under 5 minutes even against a slow server
KINDS = {"real": "etcd", "pyetcd": "pyetcd"}


@dataclass(frozen=True)
class Scenario:
    name: str
    clients: int
    conns: int
    args: tuple[str, ...]  # benchmark subcommand and its flags, without --total
    total: int  # requests in a full run; --quick divides by 5

    def argv(self, quick: bool) -> list[str]:
        total = max(200, self.total // 5) if quick else self.total
        return [f"--clients={self.clients}", f"--conns={self.conns}", *self.args, f"--total={total}"]


_PUT = ("put", "--key-size=8", f"--val-size={VALUE_SIZE}", "--key-space-size=100000")
SCENARIOS = [
    Scenario("put, 1 client", 1, 1, _PUT, 2000),
    Scenario("put, 100 clients", 100, 10, _PUT, 20000),
    Scenario("range serializable, 1 client", 1, 1, ("range", RANGE_KEY, "--consistency=s"), 4000),
    Scenario("range serializable, 100 clients", 100, 10, ("range", RANGE_KEY, "--consistency=s"), 20000),
    Scenario("range linearizable, 1 client", 1, 1, ("range", RANGE_KEY, "--consistency=l"), 3000),
    Scenario("range linearizable, 100 clients", 100, 10, ("range", RANGE_KEY, "--consistency=l"), 20000),
]


@dataclass
class Result:
    requests_per_sec: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    avg_ms: float | None = None
    wall_s: float = 0.0
    errors: int = 0
    failure: str | None = None


def parse_benchmark(out: str) -> Result:
    """Pull throughput, latencies and the error count out of the benchmark's text summary."""
    def num(pattern: str) -> float | None:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else None

    def ms(pattern: str) -> float | None:
        v = num(pattern)
        return None if v is None else v * 1000

    errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]\s", out.split("Error distribution:")[1], re.M)) \
        if "Error distribution:" in out else 0
    return Result(requests_per_sec=num(r"Requests/sec:\s*([\d.]+)"), p50_ms=ms(r"50% in ([\d.]+) secs"),
                  p99_ms=ms(r"\n\s*99% in ([\d.]+) secs"), avg_ms=ms(r"Average:\s*([\d.]+) secs"),
                  errors=errors)


def benchmark_argv(members: list[Member]) -> list[str]:
    """etcd's benchmark tool aimed at these members (it spreads its connections over all of
    them), with their client certificate: the start of every command line the benches run."""
    c = members[0].certs
    return [BENCHMARK, f"--endpoints={','.join(m.grpc_target for m in members)}", f"--cacert={c.ca}",
            f"--cert={c.client}", f"--key={c.client_key}"]


def run_scenario(members: list[Member], sc: Scenario, quick: bool) -> Result:
    cmd = [*benchmark_argv(members), "--precise", *sc.argv(quick)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SCENARIO_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return Result(wall_s=time.monotonic() - t0, failure=f"timed out after {SCENARIO_TIMEOUT:.0f}s")
    res = parse_benchmark(proc.stdout)
    res.wall_s = round(time.monotonic() - t0, 2)
    if proc.returncode != 0 or res.requests_per_sec is None:
        res.failure = f"benchmark exited {proc.returncode}: {(proc.stderr or proc.stdout)[-400:]}"
    return res


def aimed(members: list[Member], at: str) -> list[Member]:
    """The members a scenario's clients talk to: all of them, the leader, or one follower."""
    if at == "all" or len(members) == 1:
        return members
    leader, _ = wait_leader(members)
    return [leader] if at == "leader" else [next(m for m in members if m is not leader)]


def preload(member: Member) -> None:
    """The key every range scenario reads, with a value the size the puts write."""
    with grpc_channel(member) as ch:
        rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=RANGE_KEY.encode(), value=b"v" * VALUE_SIZE),
                                    timeout=10)


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _ratio(a: Result | None, b: Result | None, field: str) -> str:
    x, y = (getattr(r, field) if r and not r.failure else None for r in (a, b))
    return "-" if not x or not y else f"{x / y:.2f}"


def median_result(rounds: list[Result]) -> Result:
    """One scenario's rounds on one target as one result: median req/s and latencies; failed if any failed."""
    failed = next((r for r in rounds if r.failure), None)
    if failed is not None:
        return failed

    def med(field: str) -> float | None:
        vals = [v for r in rounds if (v := getattr(r, field)) is not None]
        return statistics.median(vals) if vals else None

    return Result(requests_per_sec=med("requests_per_sec"), p50_ms=med("p50_ms"), p99_ms=med("p99_ms"),
                  avg_ms=med("avg_ms"), wall_s=sum(r.wall_s for r in rounds), errors=sum(r.errors for r in rounds))


def print_round_ratios(results: dict[str, dict[str, list[Result]]], scenarios: list[Scenario]) -> None:
    """Each target's req/s over etcd's, round by round (each round's pair ran back to back), and their median."""
    for t in (t for t in results if t != "real"):
        for sc in scenarios:
            pairs = zip(results[t].get(sc.name, []), results["real"].get(sc.name, []), strict=True)
            ratios = [p.requests_per_sec / e.requests_per_sec for p, e in pairs
                      if p.requests_per_sec and e.requests_per_sec and not (p.failure or e.failure)]
            if ratios:
                print(f"{sc.name:34} {t}/etcd by round: {' '.join(f'{x:.2f}' for x in ratios)}"
                      f"  median {statistics.median(ratios):.2f}")


def print_table(results: dict[str, dict[str, Result]], scenarios: list[Scenario]) -> None:
    targets = list(results)
    head = f"{'scenario':34}" + "".join(f"{t + ' req/s':>15}{t + ' p99 ms':>15}" for t in targets)
    mine = [t for t in targets if t != "real"] if "real" in results else []
    for t in mine:
        head += f"{'req/s ' + t[:6] + '/etcd':>19}{'p99 ' + t[:6] + '/etcd':>17}"
    print(head)
    print("-" * len(head))
    for sc in scenarios:
        row = f"{sc.name:34}"
        for t in targets:
            r = results[t].get(sc.name)
            if r is None or r.failure:
                row += f"{'FAILED' if r else '-':>15}{'':>15}"
            else:
                row += f"{_fmt(r.requests_per_sec, ',.0f'):>15}{_fmt(r.p99_ms, '.2f'):>15}"
        for t in mine:
            p, e = results[t].get(sc.name), results["real"].get(sc.name)
            row += f"{_ratio(p, e, 'requests_per_sec'):>19}{_ratio(p, e, 'p99_ms'):>17}"
        print(row)
    for t in targets:
        for name, r in results[t].items():
            if r.failure or r.errors:
                print(f"note: {t} / {name}: {r.failure or ''} {f'{r.errors} request errors' if r.errors else ''}")


def _versions() -> dict[str, str]:
    """What was measured: the pyetcd commit (and whether the tree was dirty) and etcd's version."""
    def out(cmd: list[str]) -> str:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        return r.stdout.strip() if r.returncode == 0 else "unknown"

    dirty = out(["git", "status", "--porcelain", "--untracked-files=no"])
    return {"pyetcd_commit": out(["git", "rev-parse", "--short", "HEAD"]) + ("+dirty" if dirty else ""),
            "etcd": out(["/usr/bin/etcd", "--version"]).splitlines()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a fifth of the requests per scenario")
    ap.add_argument("--target", choices=["real", "pyetcd", "both"], default="both")
    ap.add_argument("--members", type=int, default=1, help="members per side (3: a cluster on each side)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:VAR=VALUE[,VAR=VALUE]",
                    help="another pyetcd target started with these environment variables")
    ap.add_argument("--rounds", type=int, default=1, help="runs of every scenario; the table shows medians")
    ap.add_argument("--only", default="", help="run the scenarios whose name contains this")
    ap.add_argument("--at", choices=["all", "leader", "follower"], default="all",
                    help="with --members 3: the members the clients talk to")
    args = ap.parse_args(argv)
    scenarios = [sc for sc in SCENARIOS if args.only in sc.name]
    variants: dict[str, dict[str, str]] = {}
    for v in args.variant:
        name, _, assigns = v.partition(":")
        variants[name] = dict(a.split("=", 1) for a in assigns.split(",") if a)

    targets = ["real", "pyetcd"] if args.target == "both" else [args.target]
    notes: list[str] = []
    if "pyetcd" in targets and (reason := pyetcd_unavailable_reason()):
        if args.target == "pyetcd":
            print(f"cannot bench pyetcd: {reason}", file=sys.stderr)
            return 2
        notes.append(f"pyetcd skipped: {reason}")
        print(f"note: {notes[-1]}", file=sys.stderr)
        targets.remove("pyetcd")

    subprocess.run([BENCHMARK, "--help"], capture_output=True, check=True)  # build/cache it up front
    versions = _versions()  # before the run: what the members were started from
    results: dict[str, dict[str, list[Result]]] = {t: {} for t in targets}
    members: dict[str, list[Member]] = {}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="pyetcd-bench-") as tmp:
        certs = CertPaths.create(Path(tmp) / "certs")
        try:
            for t in targets:
                members[t] = start_cluster(KINDS[t], Path(tmp) / t, certs, size=args.members)
                preload(members[t][0])
            for name, env in variants.items():
                members[name] = start_cluster("pyetcd", Path(tmp) / name, certs, size=args.members, env=env)
                preload(members[name][0])
                targets.append(name)
                results[name] = {}
            for rnd in range(args.rounds):
                for sc in scenarios:
                    # same scenario back to back on each target: fair under drifting load
                    for t in targets if rnd % 2 == 0 else targets[::-1]:
                        print(f"{sc.name:34} {t:7} ...", end=" ", flush=True, file=sys.stderr)
                        r = run_scenario(aimed(members[t], args.at), sc, args.quick)
                        results[t].setdefault(sc.name, []).append(r)
                        print(r.failure or f"{r.requests_per_sec:,.0f} req/s, p99 {r.p99_ms:.2f} ms",
                              file=sys.stderr)
        finally:
            for ms in members.values():
                for m in ms:
                    m.stop()

    medians = {t: {name: median_result(rs) for name, rs in by_sc.items()} for t, by_sc in results.items()}
    print_table(medians, scenarios)
    if args.rounds > 1 and "real" in results:
        print()
        print_round_ratios(results, scenarios)
    RESULTS.mkdir(parents=True, exist_ok=True)
    label = "kv" if args.members == 1 else f"kv{args.members}m"
    out = RESULTS / f"{label}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(started))}.json"
    out.write_text(json.dumps({
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1), "quick": args.quick, "targets": targets, "notes": notes,
        "members": args.members, "at": args.at, "variants": variants,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": versions,
        "rounds": args.rounds,
        "scenarios": [{**asdict(sc), "argv": sc.argv(args.quick)} for sc in scenarios],
        "results": {t: {k: asdict(v) for k, v in rs.items()} for t, rs in medians.items()},
        "rounds_results": {t: {k: [asdict(v) for v in rs] for k, rs in by_sc.items()} for t, by_sc in results.items()},
    }, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")
    failed = [f"{t}/{n}" for t, rs in medians.items() for n, r in rs.items() if r.failure]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
