"""The seeded simulator under CI's budget: a fixed range of seeds, the kept regression
seeds, exact replay, and proof that the checker catches a broken core."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from pyetcd.raft.log import RaftLog
from pyetcd.raft.raft import Raft

from .sim import Sim, SimFailure, SimParams, run_seed

# Runs that once failed, kept forever with their full parameters (so they replay the same
# schedule even if SimParams.from_seed's distribution changes). Each says what it caught.
REGRESSIONS = [
    (
        SimParams(
            seed=185,
            voters=4,
            spares=2,
            drop=0.02,
            dup=0.0,
            max_delay=0,
            partition_rate=0.01,
            crash_rate=0.0,
            propose_rate=1.0,
            conf_change_rate=0.01,
            transfer_rate=0.0,
            read_rate=0.05,
            compact_rate=0.1,
            max_inflight_msgs=64,
            max_inflight_bytes=0,
            max_size_per_msg=1048576,
        ),
        "a snapshot older than the change that added the follower was refused forever",
    ),
    (
        SimParams(
            seed=36,
            voters=5,
            spares=3,
            drop=0.0,
            dup=0.02,
            max_delay=8,
            partition_rate=0.0,
            crash_rate=0.0,
            propose_rate=1.0,
            conf_change_rate=0.05,
            transfer_rate=0.02,
            read_rate=0.05,
            compact_rate=0.1,
            max_inflight_msgs=4,
            max_inflight_bytes=2000,
            max_size_per_msg=0,
        ),
        "the same, with a learner",
    ),
    (
        SimParams(
            seed=924,
            voters=5,
            spares=1,
            drop=0.25,
            dup=0.0,
            max_delay=3,
            partition_rate=0.01,
            crash_rate=0.0,
            propose_rate=1.0,
            conf_change_rate=0.05,
            transfer_rate=0.02,
            read_rate=0.0,
            compact_rate=0.02,
            max_inflight_msgs=64,
            max_inflight_bytes=200,
            max_size_per_msg=0,
        ),
        "the heal check proposed to a stale leader of an older term",
    ),
    (
        SimParams(
            seed=448,
            voters=5,
            spares=0,
            drop=0.02,
            dup=0.1,
            max_delay=8,
            partition_rate=0.03,
            crash_rate=0.0,
            propose_rate=1.0,
            conf_change_rate=0.05,
            transfer_rate=0.0,
            read_rate=0.05,
            compact_rate=0.1,
            max_inflight_msgs=1,
            max_inflight_bytes=0,
            max_size_per_msg=0,
        ),
        "reordered appends during heal outran a one-entry-per-message leader",
    ),
    (
        SimParams(
            seed=377,
            voters=6,
            spares=3,
            drop=0.0,
            dup=0.02,
            max_delay=0,
            partition_rate=0.0,
            crash_rate=0.0,
            propose_rate=0.5,
            conf_change_rate=0.05,
            transfer_rate=0.005,
            read_rate=0.05,
            compact_rate=0.02,
            max_inflight_msgs=64,
            max_inflight_bytes=200,
            max_size_per_msg=1048576,
            leader_fault_rate=0.02,
            pre_vote=False,
            check_quorum=False,
        ),
        "without check-quorum a removed leader stays leader of its old term; heal must use the newest",
    ),
    (
        SimParams(
            seed=100392,
            voters=3,
            spares=1,
            drop=0.02,
            dup=0.1,
            max_delay=8,
            partition_rate=0.0,
            crash_rate=0.003,
            propose_rate=0.5,
            conf_change_rate=0.2,
            transfer_rate=0.02,
            read_rate=0.05,
            compact_rate=0.1,
            max_inflight_msgs=4,
            max_inflight_bytes=200,
            max_size_per_msg=0,
            pre_vote=False,
            check_quorum=True,
        ),
        "a leader of two removed itself and stepped down before the survivor had its log: stuck",
    ),
]

CI_SEEDS = range(1000, 1200)
LONG_SEEDS = range(5000, 5006)


@pytest.mark.parametrize("params", [p for p, _ in REGRESSIONS], ids=[f"seed{p.seed}" for p, _ in REGRESSIONS])
def test_regression(params: SimParams) -> None:
    Sim(params).run()


def test_ci_seed_budget() -> None:
    total: Counter[str] = Counter()
    for seed in CI_SEEDS:
        total.update(run_seed(seed))
    # The budget must actually exercise the hostile paths, not just pass.
    for key in ("crashes", "partitions", "dropped", "duplicated", "snapshots_applied", "reads_answered"):
        assert total[key] > 0, key
    assert total["conf_add_node_applied"] + total["conf_remove_node_applied"] > 0
    assert total["timeout_now"] > 0
    assert total["committed"] > 1000
    assert total["commit_news"] > 0  # seeds with Config.lazy_commit ran
    assert total["stable_commits"] > 0  # seeds with Config.stable_news committed at a follower first


@pytest.mark.parametrize("seed", LONG_SEEDS)
def test_long_run(seed: int) -> None:
    run_seed(seed, chaos_ticks=2000)


def test_a_seed_replays_exactly() -> None:
    a = Sim(SimParams.from_seed(77))
    b = Sim(SimParams.from_seed(77))
    assert a.run() == b.run()
    assert a.chain == b.chain and a.leader_of_term == b.leader_of_term


def _commit_by_counting(self: RaftLog, max_index: int, term: int) -> bool:
    if max_index > self.committed:
        self.commit_to(max_index)
        return True
    return False


BROKEN_CORES = {
    # Grant votes without comparing logs: stale leaders lose committed entries.
    "votes-ignore-logs": ("is_up_to_date", lambda self, lasti, term: True),
    # Commit older-term entries by counting replicas (what Figure 8 warns about).
    "commit-by-counting": ("maybe_commit", _commit_by_counting),
}


@pytest.mark.parametrize("name", sorted(BROKEN_CORES))
def test_checker_catches_a_broken_core(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Break the core on purpose: the simulator must notice within a few dozen seeds and say
    how to replay the failing one."""
    attr, broken = BROKEN_CORES[name]
    monkeypatch.setattr(RaftLog, attr, broken)
    with pytest.raises(SimFailure) as exc:
        for seed in range(50):
            run_seed(seed)
    msg = str(exc.value)
    assert any(
        k in msg for k in ("leader completeness", "state machine safety", "log matching", "commitment rule")
    )
    assert "replay with: python -m tests.raft.sim" in msg


def test_checker_catches_a_read_index_that_ignores_what_followers_may_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """With Config.stable_news a follower may commit before its leader: a leader whose read index
    forgot what it told them (stable_told) serves stale reads, and the simulator must say so."""
    monkeypatch.setattr(Raft, "stable_told", property(lambda self: 0, lambda self, value: None), raising=False)
    with pytest.raises(SimFailure) as exc:
        for seed in range(60):
            Sim(dataclasses.replace(SimParams.from_seed(seed), stable_news=True, voters=3)).run()
    assert "ReadIndex" in str(exc.value)
