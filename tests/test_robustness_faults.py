"""robustness.faults.plan: which faults each server gets, and failpoint specs the server accepts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyetcd import failpoints
from robustness import faults


def test_real_etcd_only_gets_process_faults() -> None:
    rng = random.Random(1)
    assert {faults.plan("random", "etcd", rng).kind for _ in range(50)} == set(faults.PROCESS_FAULTS)
    with pytest.raises(ValueError, match="only inside pyetcd"):
        faults.plan("failpoint", "etcd", rng)


def test_failpoint_crash_is_armed_after_a_seeded_number_of_hits() -> None:
    f = faults.plan("failpoint:turn.before_persist", "pyetcd", random.Random(3))
    point = failpoints.parse(f.env["PYETCD_FAILPOINTS"])["turn.before_persist"]
    lo, hi = faults.CRASH_POINTS["turn.before_persist"]
    assert point.action == "panic" and point.times == 1 and lo <= point.skip <= hi
    assert f.label == "failpoint:turn.before_persist"
    with pytest.raises(ValueError, match="unknown failpoint"):
        faults.plan("failpoint:nowhere", "pyetcd", random.Random(3))


def test_every_crash_point_is_called_in_the_server() -> None:
    src = "".join(p.read_text() for p in (Path(failpoints.__file__).parent).rglob("*.py"))
    for point in faults.CRASH_POINTS:
        assert f'failpoints.hit("{point}")' in src, point
