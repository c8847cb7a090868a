"""The seeded simulator under CI's budget: a fixed range of seeds, the kept regression
seeds, exact replay, and proof that the checker catches a broken core."""

from __future__ import annotations

from collections import Counter

import pytest

from pyetcd.raft.log import RaftLog

from .sim import Sim, SimFailure, SimParams, run_seed

# Seeds that once failed, kept forever. Each comment says what it caught.
REGRESSION_SEEDS = {
    185: "snapshot older than the change that added the follower was refused forever",
    36: "same as 185, with a learner",
    924: "heal check proposed to a stale leader of an older term",
    448: "reordered appends during heal outran a 1-entry-per-message leader",
}

CI_SEEDS = range(1000, 1150)
LONG_SEEDS = range(5000, 5006)


@pytest.mark.parametrize("seed", sorted(REGRESSION_SEEDS))
def test_regression_seed(seed: int) -> None:
    run_seed(seed)


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


@pytest.mark.parametrize("seed", LONG_SEEDS)
def test_long_run(seed: int) -> None:
    run_seed(seed, chaos_ticks=2000)


def test_a_seed_replays_exactly() -> None:
    a = Sim(SimParams.from_seed(77))
    b = Sim(SimParams.from_seed(77))
    assert a.run() == b.run()
    assert a.chain == b.chain and a.leader_of_term == b.leader_of_term


def test_checker_catches_a_broken_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break the core (grant votes without comparing logs): the simulator must notice within
    a few seeds, and say how to replay the failing one."""
    monkeypatch.setattr(RaftLog, "is_up_to_date", lambda self, lasti, term: True)
    with pytest.raises(SimFailure) as exc:
        for seed in range(20):
            run_seed(seed)
    msg = str(exc.value)
    assert "leader completeness" in msg or "state machine safety" in msg or "log matching" in msg
    assert "replay with: python -m tests.raft.sim" in msg
