"""``make robustness`` / ``make robustness-selftest``: seeded runs, a summary line, kept failures.

    PYTHONPATH=tests python -m robustness run --runs 10 --seed 1 [--kind pyetcd|etcd] [--members 3] [--fault kill]
    PYTHONPATH=tests python -m robustness selftest
    PYTHONPATH=tests python -m robustness check path/to/history.json
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
from pathlib import Path

from robustness.evaluate import CHECK_TIMEOUT
from robustness.faults import CLUSTER_FAULTS, LEASE_FAULT
from robustness.run import RunConfig, RunResult, replay_check, run_once
from robustness.selftest import BUGS, run_selftest
from support.tls import CertPaths


def _summary(results: list[RunResult]) -> str:
    return (f"robustness: {len(results)} runs, {sum(r.verdict.acked_writes for r in results)} acknowledged writes, "
            f"{sum(len(r.verdict.lost) for r in results)} lost, "
            f"{sum(1 for r in results if r.verdict.linearizable is False and not r.error)} linearizability violations, "
            f"{sum(len(r.verdict.watch) for r in results)} watch violations")


def _run(args: argparse.Namespace, base: Path, certs: CertPaths) -> int:
    results = []
    per_fault: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    per_size: dict[int, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for i in range(args.runs):
        seed = args.seed + i
        r = run_once(RunConfig(seed=seed, base=base, certs=certs, kind=args.kind, fault=args.fault,
                               duration=args.duration, keep=args.keep, members=args.members,
                               check_timeout=args.check_timeout, clients=args.clients))
        results.append(r)
        for counts in (per_fault[r.fault + ("" if r.fired else " (not fired)")], per_size[r.members]):
            counts[0] += 1
            counts[1] += r.failed
            counts[2] += r.inconclusive
        print(r.line(), flush=True)
        if r.leases:
            print(f"  {r.leases}", flush=True)
        if r.failed or r.inconclusive:
            print(f"  {r.status} seed {seed}: kept {r.dir} (history.json, report.txt, member logs); replay with "
                  f"--seed {seed} --runs 1 --kind {args.kind} --members {args.members}", flush=True)
            for f in [*r.verdict.findings(), *([r.error] if r.error else [])][:8]:
                print(f"    {f[:2000]}", flush=True)
    for fault, (n, bad, unsure) in sorted(per_fault.items()):
        print(f"  fault {fault}: {n} runs, {bad} failed, {unsure} inconclusive")
    for size, (n, bad, unsure) in sorted(per_size.items()):
        print(f"  {size} member{'s' if size > 1 else ''}: {n} runs, {bad} failed, {unsure} inconclusive")
    if broken := [r.seed for r in results if r.error]:
        print(f"  runs that could not finish (counted as failed, not as violations): seeds {broken}")
    if unsure := [r.seed for r in results if r.inconclusive]:
        print(f"  runs whose linearizability check gave up (inconclusive, not passed): seeds {unsure}")
    print(_summary(results), flush=True)
    return 1 if any(r.failed for r in results) else 2 if any(r.inconclusive for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="robustness", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="seeded runs against one member under one fault each")
    r.add_argument("--runs", type=int, default=10)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--kind", choices=["pyetcd", "etcd"], default="pyetcd")
    r.add_argument("--members", type=int, default=1, help="cluster size (1, 3, 5)")
    r.add_argument("--fault", default="random", help=f"random, none, kill, pause, failpoint, failpoint:<name>, "
                   f"{LEASE_FAULT} (not drawn at random); with --members > 1 also " + ", ".join(CLUSTER_FAULTS))
    r.add_argument("--check-timeout", type=float, default=CHECK_TIMEOUT,
                   help="seconds the linearizability checker may search before the run is inconclusive")
    r.add_argument("--duration", type=float, default=4.0, help="seconds of traffic per run")
    r.add_argument("--clients", type=int, default=RunConfig.clients,
                   help="concurrent recorded clients (1: a lone client, whose turns may hold the store's transaction open)")
    r.add_argument("--keep", action="store_true", help="keep every run's directory, not only failed ones")
    r.add_argument("--dir", type=Path, help="where run directories go (default: a new temp dir)")
    s = sub.add_parser("selftest", help=f"deliberate bugs ({', '.join(BUGS)}) must each be caught")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--members", type=int, default=1, help="cluster size")
    s.add_argument("--dir", type=Path)
    c = sub.add_parser("check", help="judge a kept history.json again")
    c.add_argument("history", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "check":
        v = replay_check(args.history)
        print("\n".join(v.findings()) or "no violation")
        return 1 if v.failed else 0
    base = args.dir or Path(tempfile.mkdtemp(prefix="pyetcd-robustness-"))
    base.mkdir(parents=True, exist_ok=True)
    certs = CertPaths.create(base / "certs")
    try:
        return run_selftest(base, certs, args.seed, args.members) if args.cmd == "selftest" else _run(args, base, certs)
    finally:
        shutil.rmtree(base / "certs", ignore_errors=True)
        if args.dir is None and not any(base.iterdir()):  # only failed runs left anything behind
            base.rmdir()


if __name__ == "__main__":
    sys.exit(main())
