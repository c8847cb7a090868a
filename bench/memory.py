"""Resident memory and restart-to-healthy with a million keys, pyetcd next to real etcd.

Real etcd is filled with etcd's own benchmark tool (``put --sequential-keys``: N distinct 8-byte
keys, 256-byte values) and stopped; pyetcd starts on a copy of that data dir (it converts etcd's
files at its first start), so both hold the same keys. Then each is restarted, alone, and we
time spawn-to-healthy (a linearizable Range answering) and read, after a short settle, VmRSS,
RssAnon (heap: the key index lives here) and RssFile (mapped database pages) from /proc; peak RSS
during the restart too. Ratios are pyetcd/etcd; memory numbers do not depend on CPU load.

    .venv/bin/python bench/memory.py [--keys 1000000] [--restarts 2]

``--baseline-cmd OTHER/.venv/bin/pyetcd`` adds a third server, another pyetcd build (e.g. main before
a change) on its own copy of the same data, restarted in the same rounds: an A/B in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the one shared process harness: tests/support

from kv import _versions, benchmark_argv  # noqa: E402
from pyetcd.api import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from snapshot import Sampler  # noqa: E402
from support import CertPaths, Member, grpc_channel, start_member  # noqa: E402

VALUE_SIZE = 256
SETTLE_S = 2.0  # after healthy, before reading /proc: lets start-up garbage be freed
QUOTA = ["--quota-backend-bytes", str(8 << 30)]


def fill(m: Member, keys: int) -> float:
    """N distinct 8-byte keys with 256-byte values, through etcd's benchmark tool; seconds taken."""
    t = time.monotonic()
    subprocess.run([*benchmark_argv([m]), "--clients=100", "--conns=10", "put", "--sequential-keys",
                    "--key-size=8", f"--val-size={VALUE_SIZE}", f"--key-space-size={keys}", f"--total={keys}"],
                   check=True, capture_output=True, timeout=3600)
    return round(time.monotonic() - t, 1)


def _proc_status(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile"):
                out[name.lower() + "_mib"] = round(int(rest.split()[0]) / 1024, 1)
    return out


def key_count(m: Member) -> int:
    with grpc_channel(m) as ch:
        return int(rpc_pb2_grpc.KVStub(ch).Range(
            rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0", count_only=True), timeout=120).count)


def spawn(m: Member, cmd: str | None) -> None:
    """Start ``m``; ``cmd`` (shell words) replaces the pyetcd binary for this one spawn."""
    old = os.environ.get("PYETCD_CMD")
    if cmd:
        os.environ["PYETCD_CMD"] = cmd
    try:
        m.spawn()
    finally:
        if old is None:
            os.environ.pop("PYETCD_CMD", None)
        else:
            os.environ["PYETCD_CMD"] = old


def restart(m: Member, cmd: str | None = None) -> dict[str, float]:
    """Spawn on the existing data dir: seconds to healthy, memory after settling, peak meanwhile."""
    t = time.monotonic()
    spawn(m, cmd)
    assert m.pid is not None
    sampler = Sampler(m.pid)
    m.wait_healthy(timeout=1800)
    healthy = round(time.monotonic() - t, 2)
    time.sleep(SETTLE_S)
    out = {"healthy_s": healthy, **_proc_status(m.pid), **sampler.stop()}
    out["keys"] = key_count(m)
    m.stop()
    return out


def _ratio(py: float | None, etcd: float | None) -> str:
    return "-" if not py or not etcd else f"{py / etcd:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--restarts", type=int, default=2, help="restarts per server (the best time is reported)")
    ap.add_argument("--baseline-cmd", help="another pyetcd build to measure alongside (shell words)")
    ap.add_argument("--etcd-data", type=Path, help="start from a copy of this filled etcd data dir (member m0, "
                    "left by an earlier run's --keep-etcd-data) instead of filling one: the fill takes minutes")
    ap.add_argument("--keep-etcd-data", type=Path, help="copy the filled etcd data dir here for later runs")
    args = ap.parse_args(argv)
    started = time.time()
    results: dict[str, object] = {"keys": args.keys, "value_size": VALUE_SIZE, "versions": _versions()}
    with tempfile.TemporaryDirectory(prefix="pyetcd-bench-mem-") as tmp:
        certs = CertPaths.create(Path(tmp) / "certs")
        if args.etcd_data:
            etcd = start_member("etcd", Path(tmp) / "etcd", certs, extra_args=QUOTA)
            etcd.stop()
            shutil.rmtree(etcd.data_dir)
            shutil.copytree(args.etcd_data, etcd.data_dir)
        else:
            etcd = start_member("etcd", Path(tmp) / "etcd", certs, extra_args=QUOTA)
            try:
                results["fill_s"] = fill(etcd, args.keys)
            finally:
                etcd.stop()
            if args.keep_etcd_data:
                shutil.copytree(etcd.data_dir, args.keep_etcd_data)
        servers: dict[str, tuple[Member, str | None]] = {"etcd": (etcd, None)}
        builds = {"pyetcd": None, "baseline": args.baseline_cmd} if args.baseline_cmd else {"pyetcd": None}
        for name, cmd in builds.items():
            m = replace(etcd, kind="pyetcd", base_dir=Path(tmp) / name, proc=None)
            if name == "pyetcd":  # converts etcd's files at its first start
                shutil.copytree(etcd.data_dir, m.data_dir)
                t = time.monotonic()
                m.start(timeout=3600)
                results["pyetcd_first_start_s"] = round(time.monotonic() - t, 1)
                m.stop()
            else:  # the baseline starts on the converted store: only the restart is compared
                shutil.copytree(servers["pyetcd"][0].data_dir, m.data_dir)
            servers[name] = (m, cmd)
        runs: dict[str, list[dict[str, float]]] = {n: [] for n in servers}
        for _ in range(args.restarts):
            for name, (m, cmd) in servers.items():  # alternate: load drift hits all alike
                r = restart(m, cmd)
                runs[name].append(r)
                print(f"{name:8} restart: {json.dumps(r)}", file=sys.stderr, flush=True)
        results["restarts"] = runs
    if any(r["keys"] != args.keys for rs in runs.values() for r in rs):
        print(f"warning: a server did not hold {args.keys:,} keys (see the keys field)", file=sys.stderr)
    best = {n: min(rs, key=lambda r: r["healthy_s"]) for n, rs in runs.items()}
    print(f"\n{args.keys:,} keys, {VALUE_SIZE}-byte values, after a restart (best of {args.restarts})")
    names = list(best)
    print(f"{'':24}" + "".join(f"{n:>10}" for n in names) + "".join(f"{n[:6] + '/etcd':>14}" for n in names[1:]))
    for field, label in (("healthy_s", "restart-to-healthy s"), ("vmrss_mib", "VmRSS MiB"),
                         ("rssanon_mib", "RssAnon MiB"), ("rssfile_mib", "RssFile MiB"),
                         ("peak_rss_mib", "peak RSS in restart MiB")):
        vals = [best[n].get(field) for n in names]
        print(f"{label:24}" + "".join(f"{v:>10}" for v in vals)
              + "".join(f"{_ratio(v, vals[0]):>14}" for v in vals[1:]))
    out = ROOT / "bench" / "results" / f"memory-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(started))}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
