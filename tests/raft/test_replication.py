"""Log replication: repair of divergent logs with fast backtracking, flow control,
heartbeats, proposal forwarding."""

from __future__ import annotations

import pytest

from pyetcd.raft import MessageType, ProgressState, ProposalDroppedError, StateType

from .cluster import Cluster

LEADER_LOG = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]

# The followers of the Raft paper's Figure 7.
FIGURE_7 = {
    "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 1, 4],
    "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 1, 4, 4, 4, 4],
    "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


@pytest.mark.parametrize("case", sorted(FIGURE_7))
def test_figure_7_follower_logs_are_repaired(case: str) -> None:
    follower = FIGURE_7[case]
    c = Cluster(
        [1, 2, 3],
        logs={1: LEADER_LOG, 2: follower, 3: LEADER_LOG},
        terms={1: 7, 2: 7, 3: 7},
        pre_vote=False,
    )
    c.elect(1)
    assert c.raft(1).term == 8
    assert c.log_terms(2) == c.log_terms(1) == [(i + 1, t) for i, t in enumerate([*LEADER_LOG, 8])]
    # Fast backtracking: at most one rejection per distinct term of the follower's log,
    # not one per entry.
    rejections = [m for m in c.sent if m.type is MessageType.MSG_APP_RESP and m.frm == 2 and m.reject]
    assert len(rejections) <= len(set(follower))
    # Everything (the leader's log) is committed and applied identically.
    assert [e.index for e in c.applied[2]] == [e.index for e in c.applied[1]] == list(range(1, 12))


def test_conflict_hint_skips_a_long_divergent_term() -> None:
    c = Cluster(
        [1, 2, 3],
        logs={1: [1] + [2] * 30, 2: [1] + [3] * 40, 3: [1] + [2] * 30},
        terms={1: 3, 2: 3, 3: 3},
        pre_vote=False,
    )
    c.elect(1)
    assert c.log_terms(2) == c.log_terms(1)
    rejections = [m for m in c.sent if m.type is MessageType.MSG_APP_RESP and m.frm == 2 and m.reject]
    assert len(rejections) <= 2


def _no_acks_from(c: Cluster, i: int) -> None:
    c.filters.append(lambda m: not (m.frm == i and m.type is MessageType.MSG_APP_RESP))


def test_flow_control_bounds_messages_in_flight() -> None:
    c = Cluster([1, 2], max_inflight_msgs=3)
    c.elect(1)
    assert c.raft(1).tracker.progress[2].state is ProgressState.REPLICATE
    _no_acks_from(c, 2)
    c.filters.append(lambda m: m.type is not MessageType.MSG_HEARTBEAT_RESP)
    before = len(c.sent)
    for n in range(10):
        c.propose(1, b"e%d" % n)
    apps = [m for m in c.sent[before:] if m.type is MessageType.MSG_APP and m.to == 2]
    assert len(apps) == 3
    assert c.raft(1).tracker.progress[2].is_paused()


def test_flow_control_bounds_bytes_in_flight() -> None:
    c = Cluster([1, 2], max_inflight_bytes=150)
    c.elect(1)
    _no_acks_from(c, 2)
    c.filters.append(lambda m: m.type is not MessageType.MSG_HEARTBEAT_RESP)
    before = len(c.sent)
    for _ in range(10):
        c.propose(1, b"x" * 50)  # 66 bytes each with overhead
    apps = [m for m in c.sent[before:] if m.type is MessageType.MSG_APP and m.to == 2]
    assert len(apps) == 3  # 66, 132, then 198 >= 150: full
    c.heal()
    c.tick(3)
    assert c.raft(2).log.last_index() == c.raft(1).log.last_index()


def test_max_size_per_msg_splits_batches() -> None:
    c = Cluster([1, 2], max_size_per_msg=100)
    c.elect(1)
    c.cut(1, 2)
    for _ in range(6):
        c.nodes[1].propose(b"y" * 40)
    c.stabilize()
    c.heal()
    before = len(c.sent)
    c.tick(3)
    apps = [m for m in c.sent[before:] if m.type is MessageType.MSG_APP and m.entries]
    assert apps and all(len(m.entries) <= 2 for m in apps)
    assert c.data(2) == [b"y" * 40] * 6


def test_heartbeat_carries_commit_no_further_than_match() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.cut(1, 3)
    c.propose(1, b"a")
    assert c.raft(1).log.committed == 2 and c.raft(3).log.committed == 1
    hb = [m for m in c.raft(1).msgs if m.type is MessageType.MSG_HEARTBEAT]
    assert hb == []
    c.nodes[1].raft.bcast_heartbeat()
    to3 = [m for m in c.raft(1).msgs if m.to == 3]
    assert to3[0].commit == 1  # 3 is only known to hold index 1
    c.heal()
    c.tick(2)
    assert c.raft(3).log.committed == 2 and c.data(3) == [b"a"]


def test_follower_forwards_proposals_to_leader() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(3, b"via-follower")
    assert all(c.data(i) == [b"via-follower"] for i in (1, 2, 3))


def test_candidate_drops_proposals() -> None:
    c = Cluster([1, 2, 3], pre_vote=False)
    c.isolate(1)
    c.nodes[1].campaign()
    assert c.state(1) is StateType.CANDIDATE
    with pytest.raises(ProposalDroppedError):
        c.nodes[1].propose(b"x")


def test_lost_appends_recovered_by_heartbeat_probe() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.filters.append(lambda m: not (m.type is MessageType.MSG_APP and m.to == 3))
    for n in range(5):
        c.propose(1, b"p%d" % n)
    assert c.data(3) == []
    c.heal()
    c.tick(3)
    assert c.data(3) == [b"p%d" % n for n in range(5)]


def test_unreachable_report_moves_follower_to_probe() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    assert c.raft(1).tracker.progress[2].state is ProgressState.REPLICATE
    c.nodes[1].report_unreachable(2)
    assert c.raft(1).tracker.progress[2].state is ProgressState.PROBE
