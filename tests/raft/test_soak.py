"""`make soak`: thousands of simulator seeds beyond CI's budget, spread over the CPUs,
with the count and the coverage of what the seeds exercised printed at the end.

RAFT_SOAK_SEEDS (default 3000), RAFT_SOAK_START (default 100000), RAFT_SOAK_TICKS
(default 300) and RAFT_SOAK_JOBS (default: all CPUs) tune it.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import pytest

from .sim import SimFailure, SimParams, run_seed


def _one(args: tuple[int, int]) -> tuple[int, dict[str, int] | None, str]:
    seed, ticks = args
    try:
        return seed, dict(run_seed(seed, chaos_ticks=ticks)), ""
    except SimFailure as e:
        return seed, None, str(e)
    except Exception as e:  # a crash inside the core is a failure too
        return seed, None, f"{type(e).__name__}: {e}\n  replay with: python -m tests.raft.sim {seed}"


@pytest.mark.soak
def test_soak(capsys: pytest.CaptureFixture[str]) -> None:
    n = int(os.environ.get("RAFT_SOAK_SEEDS", "3000"))
    start = int(os.environ.get("RAFT_SOAK_START", "100000"))
    ticks = int(os.environ.get("RAFT_SOAK_TICKS", "300"))
    jobs = int(os.environ.get("RAFT_SOAK_JOBS", str(os.cpu_count() or 1)))
    seeds = range(start, start + n)
    t0 = time.monotonic()
    totals: Counter[str] = Counter()
    seeds_with: Counter[str] = Counter()
    heal_max = 0
    failures: list[str] = []
    shapes: Counter[int] = Counter()
    modes: Counter[str] = Counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for seed, stats, err in pool.map(_one, [(s, ticks) for s in seeds], chunksize=8):
            p = SimParams.from_seed(seed)
            shapes[p.voters] += 1
            modes.update(
                k
                for k, on in (("no pre-vote", not p.pre_vote), ("no check-quorum", not p.check_quorum))
                if on
            )
            if stats is None:
                failures.append(f"seed {seed}: {err}")
                continue
            heal_max = max(heal_max, stats.pop("heal_ticks_max", 0))
            totals.update(stats)
            seeds_with.update(k for k, v in stats.items() if v)
    elapsed = time.monotonic() - t0
    with capsys.disabled():
        print(
            f"\nraft soak: {n} seeds [{start}, {start + n}), {ticks} chaos ticks each, {elapsed:.0f}s, {jobs} jobs"
        )
        print("  voters per cluster: " + ", ".join(f"{v}: {shapes[v]}" for v in sorted(shapes)))
        print("  seeds with " + ", ".join(f"{k}: {v}" for k, v in sorted(modes.items())))
        print(f"  longest recovery after heal: {heal_max} ticks")
        print(f"  {'event':<32}{'total':>12}{'seeds':>8}")
        for key in sorted(totals):
            print(f"  {key:<32}{totals[key]:>12}{seeds_with[key]:>8}")
        for f in failures:
            print("FAILED " + f)
    assert not failures, f"{len(failures)} seeds failed; first: {failures[0]}"
