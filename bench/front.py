"""What the HTTP front on the client port costs gRPC: pyetcd with it and without it, A/B in one run.

Three pyetcd members run side by side: one with the front (the default: gRPC relayed by
gateway/_pump, which ends TLS, to the member's native gRPC transport, h2/), one whose front
relays in Python (``PYETCD_FRONT_RELAY=python``: still encrypted, so grpc.aio serves it and does
TLS), and one with ``--client-urls-http=false`` (grpc.aio alone on the port, as before the gateway). Each round runs
every put and range scenario of bench/kv.py (etcd's own benchmark tool) on one member, then the
other, rotating which goes first; the spread across rounds shows how much the shared CPU
drifts. Results go to bench/results/front-<timestamp>.json.

    .venv/bin/python bench/front.py [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from kv import RESULTS, SCENARIOS, CertPaths, Member, preload, run_scenario
from support import start_member
from support.procstat import children, cpu_seconds


def cpu_of(member: Member) -> tuple[float, float]:
    """CPU seconds used so far by the member process and by its children (the front's relay)."""
    assert member.pid is not None
    return cpu_seconds(member.pid), sum(cpu_seconds(k) for k in children(member.pid))

# name: (extra flags, extra environment). front-py: the front relaying gRPC in Python, not gateway/_pump
VARIANTS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "front": ((), {}),
    "front-py": ((), {"PYETCD_FRONT_RELAY": "python"}),
    "grpc-only": (("--client-urls-http=false",), {}),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a fifth of the requests per scenario")
    ap.add_argument("--only", default="", help="run scenarios whose name contains this")
    args = ap.parse_args(argv)
    scenarios = [sc for sc in SCENARIOS if args.only in sc.name]
    rates: dict[str, dict[str, list[float]]] = {v: {sc.name: [] for sc in scenarios} for v in VARIANTS}
    # CPU microseconds per request, member and relay: robust to other load on the machine
    cpu: dict[str, dict[str, list[tuple[float, float]]]] = {v: {sc.name: [] for sc in scenarios} for v in VARIANTS}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="pyetcd-bench-front-") as tmp:
        certs = CertPaths.create(Path(tmp) / "certs")
        members: dict[str, Member] = {}
        try:
            for v, (extra, env) in VARIANTS.items():
                members[v] = start_member("pyetcd", Path(tmp) / v, certs, name=f"bench-{v}", extra_args=extra,
                                          env=env)
                preload(members[v])
            for rnd in range(args.rounds):
                names = list(VARIANTS)  # rotated: each variant goes first in some round (the first runs slower)
                order = names[rnd % len(names):] + names[:rnd % len(names)]
                for sc in scenarios:
                    for v in order:
                        m0, r0 = cpu_of(members[v])
                        r = run_scenario([members[v]], sc, args.quick)
                        m1, r1 = cpu_of(members[v])
                        if r.failure or r.requests_per_sec is None:
                            print(f"{sc.name} {v}: {r.failure}", file=sys.stderr)
                            continue
                        total = max(200, sc.total // 5) if args.quick else sc.total
                        per = ((m1 - m0) / total * 1e6, (r1 - r0) / total * 1e6)
                        rates[v][sc.name].append(r.requests_per_sec)
                        cpu[v][sc.name].append(per)
                        print(f"round {rnd} {sc.name:34} {v:9} {r.requests_per_sec:9,.0f} req/s  "
                              f"cpu/req member {per[0]:5.0f} us relay {per[1]:5.0f} us", file=sys.stderr)
        finally:
            for m in members.values():
                m.stop()
    print(f"{'scenario':34}{'variant':10}{'req/s (range)':>16}{'grpc-only req/s':>18}{'median ratio':>13}"
          f"{'cpu/req member+relay us':>25}{'grpc-only cpu/req us':>22}")
    summary: dict[str, dict[str, object]] = {}
    for sc in scenarios:
        g = rates["grpc-only"][sc.name]
        if not g:
            continue
        gm = statistics.median(c[0] for c in cpu["grpc-only"][sc.name])
        summary[sc.name] = {"grpc_only": g, "grpc_only_cpu_us_per_req": cpu["grpc-only"][sc.name]}
        for v in VARIANTS:
            f = rates[v][sc.name]
            if v == "grpc-only" or not f:
                continue
            ratio = statistics.median(f) / statistics.median(g)
            fm = statistics.median(c[0] for c in cpu[v][sc.name])
            fr = statistics.median(c[1] for c in cpu[v][sc.name])
            summary[sc.name][v] = {"rates": f, "median_ratio": round(ratio, 3),
                                   "cpu_us_per_req_member_relay": cpu[v][sc.name]}
            print(f"{sc.name:34}{v:10}{f'{min(f):,.0f}-{max(f):,.0f}':>16}{f'{min(g):,.0f}-{max(g):,.0f}':>18}"
                  f"{ratio:>13.3f}{f'{fm:.0f}+{fr:.0f}':>25}{f'{gm:.0f}':>22}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"front-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(started))}.json"
    out.write_text(json.dumps({"rounds": args.rounds, "quick": args.quick, "summary": summary,
                               "scenarios": [asdict(sc) for sc in scenarios]}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
