"""Where pyetcd's CPU goes under etcd's benchmark tool: a py-spy sampling profile, summarized.

Starts one pyetcd member (mutual TLS, as bench/kv.py), drives it with one scenario of etcd's
benchmark tool, and samples the member with py-spy meanwhile (only threads doing work, with
the GIL unless ``--all-threads``). Prints the busiest functions by self and by inclusive samples,
grouped by thread, and keeps the collapsed stacks in bench/results/profile-<scenario>-<time>.txt
(for flame-graph tools). Needs py-spy (a dev dependency) and ptrace rights over the member.

    .venv/bin/python bench/profile.py [--scenario put|range-s|range-l] [--seconds 10] [--members 3]

With ``--members 3`` the benchmark spreads its clients over a three-member cluster (as
``bench/kv.py --members 3``) and the leader and one follower are sampled at once, each reported
on its own.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the one shared process harness: tests/support

from kv import _PUT, RANGE_KEY, _versions, benchmark_argv, preload  # noqa: E402
from support import CertPaths, start_cluster  # noqa: E402
from support.cluster import wait_leader  # noqa: E402

SCENARIOS = {
    "put": list(_PUT),
    "range-s": ["range", RANGE_KEY, "--consistency=s"],
    "range-l": ["range", RANGE_KEY, "--consistency=l"],
}
_FRAME = re.compile(r"^(.*) \((.*?):\d+\)$")


def _short(frame: str) -> str:
    """``func (path/to/pyetcd/x.py:12)`` -> ``func (pyetcd/x.py)``: lines merged per function."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    func, path = m.groups()
    for anchor in ("pyetcd/", "site-packages/", "python3.11/"):
        if anchor in path:
            path = path[path.index(anchor):]
            break
    return f"{func} ({path})"


def summarize(collapsed: str, top: int) -> str:
    self_n: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        total += n
        threads[frames[0]] += n  # py-spy puts the thread first
        self_n[frames[-1]] += n
        for f in set(frames[1:]):
            incl[f] += n
    out = [f"{total} samples"]
    out += ["", "by thread:"] + [f"  {100 * n / total:5.1f}%  {f}" for f, n in threads.most_common(6)]
    out += ["", "self:"] + [f"  {100 * n / total:5.1f}%  {f}" for f, n in self_n.most_common(top)]
    out += ["", "inclusive:"] + [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="put")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--members", type=int, default=1, choices=[1, 3], help="3: a cluster, leader and a follower sampled")
    ap.add_argument("--all-threads", action="store_true", help="sample threads without the GIL too")
    ap.add_argument("--native", action="store_true", help="C frames too (grpc's Cython core, protobuf)")
    args = ap.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    started = time.gmtime()
    with tempfile.TemporaryDirectory(prefix="pyetcd-bench-prof-") as tmp:
        certs = CertPaths.create(Path(tmp) / "certs")
        members = start_cluster("pyetcd", Path(tmp), certs, size=args.members)
        try:
            leader, _ = wait_leader(members)
            sampled = {"member": leader} if args.members == 1 else {
                "leader": leader, "follower": next(m for m in members if m is not leader)}
            preload(leader)
            load = subprocess.Popen(
                [*benchmark_argv(members), f"--clients={args.clients}", f"--conns={max(1, args.clients // 10)}",
                 *SCENARIOS[args.scenario], "--total=10000000"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(2)  # past connection set-up
                raws = {role: Path(tmp) / f"stacks-{role}.txt" for role in sampled}
                spies = [subprocess.Popen(
                    [spy, "record", "--pid", str(m.pid), "--duration", str(args.seconds),
                     "--rate", "200", "--format", "raw", "--output", str(raws[role]),
                     # --native pauses the process per sample (py-spy cannot do both)
                     *(["--native"] if args.native else ["--nonblocking"]),
                     *([] if args.all_threads else ["--gil"])],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for role, m in sampled.items()]
                for proc in spies:
                    _, err = proc.communicate(timeout=args.seconds + 60)
                    if proc.returncode:
                        raise SystemExit(f"py-spy failed: {err.decode()}")
            finally:
                load.terminate()
                load.wait(10)
            collapsed = {role: raw.read_text() for role, raw in raws.items()}
        finally:
            for m in members:
                m.stop()
    print(f"pyetcd {_versions()['pyetcd_commit']}, {args.scenario}, {args.clients} clients, "
          f"{args.members} member(s), {args.seconds}s")
    stamp = time.strftime('%Y%m%dT%H%M%S', started)
    for role, stacks in collapsed.items():
        print(f"\n== {role}\n\n{summarize(stacks, args.top)}")
        suffix = "" if args.members == 1 else f"-{role}"
        out = ROOT / "bench" / "results" / f"profile-{args.scenario}{suffix}-{stamp}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(stacks)
        print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
