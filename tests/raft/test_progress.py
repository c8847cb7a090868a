"""Progress states, the in-flight window (messages and bytes) and quorum arithmetic."""

from __future__ import annotations

import pytest

from pyetcd.raft import Inflights, Progress, ProgressState
from pyetcd.raft.quorum import VoteResult, committed_index, has_quorum, vote_result


def test_inflights_bounded_by_count() -> None:
    inf = Inflights(3)
    for i in (1, 2, 3):
        inf.add(i, 10)
    assert inf.full()
    with pytest.raises(OverflowError):
        inf.add(4, 10)
    inf.free_le(2)
    assert len(inf) == 1 and not inf.full() and inf.bytes == 10
    inf.free_first_one()
    assert len(inf) == 0 and inf.bytes == 0


def test_inflights_bounded_by_bytes() -> None:
    inf = Inflights(100, max_bytes=50)
    inf.add(1, 30)
    assert not inf.full()
    inf.add(2, 30)
    assert inf.full() and inf.bytes == 60
    inf.free_le(1)
    assert not inf.full()


def test_probe_pauses_after_one_message_until_answer() -> None:
    pr = Progress(0, 5, Inflights(10))
    assert not pr.is_paused()
    pr.probe_sent = True
    assert pr.is_paused()
    assert pr.maybe_update(4)
    assert not pr.is_paused()


def test_replicate_paused_when_window_full() -> None:
    pr = Progress(3, 4, Inflights(2))
    pr.become_replicate()
    pr.optimistic_update(5)
    pr.inflights.add(5, 1)
    pr.optimistic_update(6)
    pr.inflights.add(6, 1)
    assert pr.is_paused() and pr.next == 7


def test_maybe_decr_to_ignores_stale_rejections() -> None:
    pr = Progress(5, 10, Inflights(10))
    pr.become_replicate()
    assert not pr.maybe_decr_to(4, 0)  # already matched beyond it
    assert pr.maybe_decr_to(8, 0) and pr.next == 6
    probe = Progress(0, 10, Inflights(10))
    assert not probe.maybe_decr_to(5, 0)  # not the index we probed
    assert probe.maybe_decr_to(9, 3) and probe.next == 4


def test_snapshot_state_pauses_and_resumes_after_pending() -> None:
    pr = Progress(0, 1, Inflights(10))
    pr.become_snapshot(20)
    assert pr.is_paused() and pr.state is ProgressState.SNAPSHOT
    pr.become_probe()
    assert pr.next == 21 and pr.state is ProgressState.PROBE


def test_committed_index_is_the_majority_match() -> None:
    assert committed_index({1, 2, 3}, {1: 5, 2: 3, 3: 9}) == 5
    assert committed_index({1, 2, 3, 4}, {1: 5, 2: 3, 3: 9, 4: 1}) == 3
    assert committed_index({1}, {1: 7}) == 7
    # Learners' match (ids outside the voters) never counts.
    assert committed_index({1, 2, 3}, {1: 9, 2: 1, 3: 1, 4: 9, 5: 9}) == 1


def test_vote_result() -> None:
    assert vote_result({1, 2, 3}, {1: True, 2: True}) is VoteResult.WON
    assert vote_result({1, 2, 3}, {1: True, 2: False}) is VoteResult.PENDING
    assert vote_result({1, 2, 3}, {1: True, 2: False, 3: False}) is VoteResult.LOST
    assert vote_result({1, 2, 3, 4}, {1: True, 2: True}) is VoteResult.PENDING
    assert vote_result({1}, {1: True}) is VoteResult.WON
    assert has_quorum({1, 2, 3}, {1, 3, 7}) and not has_quorum({1, 2, 3}, {1, 7})
