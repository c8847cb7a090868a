"""``etcdctl check perf`` against a three-member pyetcd cluster and a three-member real etcd
cluster in the same run (mutual TLS, all three endpoints), for each --load given.

etcdctl's own verdict (PASS/FAIL for throughput, slowest request, latency deviation) is printed
per load and side; results go to bench/results/checkperf-<timestamp>.json.

    .venv/bin/python bench/checkperf.py [--load s --load m] [--members 3]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the one shared process harness: tests/support

from support import CertPaths, Member, etcdctl, start_cluster  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def check_perf(members: list[Member], load: str) -> dict[str, object]:
    res = etcdctl(members, "check", "perf", f"--load={load}", "--prefix=/checkperf/", "--auto-compact",
                  "--auto-defrag", check=False, timeout=600)
    out = res.stdout + res.stderr
    tput = re.search(r"Throughput (?:is|too low:) (\d+) writes/s", out)
    slowest = re.search(r"Slowest request took ([\d.]+)s", out)
    return {"ok": res.returncode == 0, "writes_per_s": int(tput.group(1)) if tput else None,
            "slowest_s": float(slowest.group(1)) if slowest else None,
            "output": [line for line in out.splitlines() if line.startswith(("PASS", "FAIL"))]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--load", action="append", choices=["s", "m", "l", "xl"])
    ap.add_argument("--members", type=int, default=3)
    args = ap.parse_args(argv)
    loads = args.load or ["s", "m"]
    results: dict[str, dict[str, object]] = {}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="pyetcd-checkperf-") as tmp:
        certs = CertPaths.create(Path(tmp) / "certs")
        for kind in ("etcd", "pyetcd"):
            members = start_cluster(kind, Path(tmp) / kind, certs, size=args.members)
            try:
                for load in loads:
                    print(f"check perf --load={load} on {args.members} {kind} members ...", file=sys.stderr)
                    r = results.setdefault(kind, {})[load] = check_perf(members, load)
                    print("\n".join(str(line) for line in r["output"]), file=sys.stderr)  # type: ignore[attr-defined]
            finally:
                for m in members:
                    m.stop()
    print(f"{'load':6}{'etcd writes/s':>15}{'pyetcd writes/s':>17}{'ratio':>8}{'etcd':>7}{'pyetcd':>8}")
    for load in loads:
        e, p = results["etcd"][load], results["pyetcd"][load]
        ew, pw = e["writes_per_s"], p["writes_per_s"]
        ratio = f"{pw / ew:.2f}" if isinstance(ew, int) and isinstance(pw, int) and ew else "-"
        print(f"{load:6}{ew or '-':>15}{pw or '-':>17}{ratio:>8}{'PASS' if e['ok'] else 'FAIL':>7}"
              f"{'PASS' if p['ok'] else 'FAIL':>8}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"checkperf-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(started))}.json"
    out.write_text(json.dumps({"members": args.members, "results": results}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
