"""Snapshot save and restore of a large store, pyetcd next to real etcd: wall time and peak memory.

For each server: fill a fresh member with SIZE of values over gRPC, `etcdctl snapshot save`
(timed; the server's resident and anonymous memory sampled meanwhile), then `etcdctl snapshot
restore` (timed, its peak RSS) and the server started on the restored dir (time to healthy, peak
memory: pyetcd converts etcd's files at that first start). pyetcd's own `pyetcdutl snapshot
restore` is timed too. Not part of the test run: a 1 GiB run takes minutes and disk.

    .venv/bin/python bench/snapshot.py [--size-mib 1024] [--value-kib 512]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the one shared process harness: tests/support

from pyetcd.api import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from support import ETCDCTL_BIN, CertPaths, Member, etcdctl, etcdctl_env, free_port, grpc_channel  # noqa: E402
from support.member import start_member  # noqa: E402

PYETCDUTL = str(Path(sys.executable).parent / "pyetcdutl")
QUOTA = ["--quota-backend-bytes", str(8 << 30)]


class Sampler:
    """Peak VmRSS and RssAnon (KiB) of a pid, sampled every 20 ms until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid, self.rss, self.anon = pid, 0, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith(("VmRSS:", "RssAnon:")):
                            v = int(line.split()[1])
                            if line.startswith("VmRSS"):
                                self.rss = max(self.rss, v)
                            else:
                                self.anon = max(self.anon, v)
            except OSError:
                return
            time.sleep(0.02)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._t.join()
        return {"peak_rss_mib": round(self.rss / 1024, 1), "peak_anon_mib": round(self.anon / 1024, 1)}


def timed_child(argv: list[str]) -> dict[str, float]:
    """Run a command; its wall time and peak RSS (from wait4's rusage)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=etcdctl_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return {"seconds": round(time.monotonic() - start, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def fill(m: Member, size: int, value_size: int) -> None:
    value = os.urandom(value_size)
    with grpc_channel(m, options=[("grpc.max_send_message_length", 4 << 20)]) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: kv.Put(rpc_pb2.PutRequest(key=b"bench/%08d" % i, value=value), timeout=60),
                          range(size // value_size)))


def run(kind: str, base: Path, certs: CertPaths, size: int, value_size: int) -> dict[str, object]:
    out: dict[str, object] = {}
    m = start_member(kind, base / "src", certs, name=f"{kind}-src", extra_args=QUOTA)
    try:
        t = time.monotonic()
        fill(m, size, value_size)
        out["fill_seconds"] = round(time.monotonic() - t, 1)
        snap = base / "snap.db"
        assert m.pid is not None
        sampler = Sampler(m.pid)
        t = time.monotonic()
        etcdctl(m, "snapshot", "save", str(snap), timeout=1800)
        out["save"] = {"seconds": round(time.monotonic() - t, 2), **sampler.stop(),
                       "file_mib": round(snap.stat().st_size / 2**20, 1)}
    finally:
        m.stop()
    target = Member(kind=kind, name=f"{kind}-r", base_dir=base / "restored", client_port=free_port(),
                    peer_port=free_port(), certs=certs, extra_args=tuple(QUOTA))
    out["etcdctl_restore"] = timed_child([ETCDCTL_BIN, "snapshot", "restore", str(snap), "--data-dir",
                                          str(target.data_dir), "--name", target.name, "--initial-cluster",
                                          f"{target.name}={target.peer_url}", "--initial-advertise-peer-urls",
                                          target.peer_url, "--initial-cluster-token", target.cluster_token])
    if kind == "pyetcd":
        out["pyetcdutl_restore"] = timed_child([PYETCDUTL, "snapshot", "restore", str(snap), "--data-dir",
                                                str(base / "utl")])
    t = time.monotonic()
    target.spawn()
    assert target.pid is not None
    sampler = Sampler(target.pid)
    try:
        target.wait_healthy(timeout=1800)
        out["start_on_restored"] = {"seconds": round(time.monotonic() - t, 2), **sampler.stop()}
        with grpc_channel(target) as ch:
            out["keys_after_restore"] = rpc_pb2_grpc.KVStub(ch).Range(
                rpc_pb2.RangeRequest(key=b"bench/", range_end=b"bench0", count_only=True)).count
    finally:
        target.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--value-kib", type=int, default=512)
    ap.add_argument("--kinds", default="etcd,pyetcd")
    args = ap.parse_args()
    results: dict[str, object] = {"size_mib": args.size_mib, "value_kib": args.value_kib}
    with tempfile.TemporaryDirectory(prefix="pyetcd-bench-snap-") as tmp:
        certs = CertPaths.create(Path(tmp) / "certs")
        for kind in args.kinds.split(","):
            results[kind] = run(kind, Path(tmp) / kind, certs, args.size_mib << 20, args.value_kib << 10)
            print(kind, json.dumps(results[kind]), flush=True)
    out = ROOT / "bench" / "results" / f"snapshot-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
