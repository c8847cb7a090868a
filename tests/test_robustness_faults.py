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


def test_cluster_faults_need_several_members_and_a_failpoint_lands_on_one_member() -> None:
    rng = random.Random(5)
    assert not {faults.plan("random", "pyetcd", rng).kind for _ in range(100)} & set(faults.CLUSTER_FAULTS)
    kinds = {faults.plan("random", "etcd", rng, size=3).kind for _ in range(300)}
    assert kinds == {*faults.PROCESS_FAULTS, *faults.CLUSTER_FAULTS}  # no failpoints inside real etcd
    with pytest.raises(ValueError, match="several members"):
        faults.plan("partition", "pyetcd", rng)
    assert {faults.plan("failpoint", "pyetcd", rng, size=5).member for _ in range(200)} == set(range(5))


def test_a_check_that_gives_up_is_inconclusive_never_passed_nor_a_violation(tmp_path: Path) -> None:
    from robustness.__main__ import _summary
    from robustness.evaluate import Verdict
    from robustness.run import RunResult

    gave_up = RunResult(1, "pyetcd", "kill", True, 10, Verdict(acked_writes=3, linearizable=None), tmp_path,
                        members=3)
    assert not gave_up.failed and gave_up.inconclusive and gave_up.status == "INCONCLUSIVE"
    assert "INCONCLUSIVE" in gave_up.line()
    assert _summary([gave_up]).endswith("0 lost, 0 linearizability violations, 0 watch violations")
    wrong = RunResult(2, "pyetcd", "kill", True, 10, Verdict(linearizable=False), tmp_path, members=3)
    assert wrong.failed and not wrong.inconclusive
    assert "1 linearizability violations" in _summary([gave_up, wrong])


def test_lease_pause_is_asked_for_by_name_on_any_server_and_size_with_a_seeded_short_ttl() -> None:
    """Outside the random draw, so seeds recorded before it existed keep their faults."""
    rng = random.Random(9)
    drawn = {faults.plan("random", kind, rng, size).kind for kind in ("etcd", "pyetcd") for size in (1, 3)
             for _ in range(100)}
    assert faults.LEASE_FAULT not in drawn
    plans = [faults.plan(faults.LEASE_FAULT, kind, rng, size) for kind in ("etcd", "pyetcd") for size in (1, 3, 5)
             for _ in range(10)]
    assert {p.lease_ttl for p in plans} == set(faults.SHORT_LEASE_TTLS) and not any(p.env for p in plans)
    assert faults.plan("pause", "pyetcd", rng).lease_ttl == 0  # no short leases in other runs
