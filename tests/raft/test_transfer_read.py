"""Leadership transfer and ReadIndex (linearizable reads without log writes)."""

from __future__ import annotations

import pytest

from pyetcd.raft import MessageType, ProposalDroppedError, ReadState, StateType

from .cluster import Cluster


def test_transfer_to_up_to_date_follower() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(1, b"a")
    c.nodes[1].transfer_leader(2)
    c.stabilize()
    assert c.state(2) is StateType.LEADER and c.raft(1).lead == 2
    assert any(m.type is MessageType.MSG_TIMEOUT_NOW and m.to == 2 for m in c.sent)


def test_transfer_waits_for_target_to_catch_up() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.leave_behind(3, 1, 5)
    c.nodes[1].transfer_leader(3)
    # Proposals are refused while the transfer is under way.
    with pytest.raises(ProposalDroppedError):
        c.nodes[1].propose(b"late")
    c.stabilize()
    assert c.state(3) is StateType.LEADER
    assert c.data(3) == [b"v%d" % n for n in range(5)]
    first_timeout = next(k for k, m in enumerate(c.sent) if m.type is MessageType.MSG_TIMEOUT_NOW)
    last_app_to_3 = max(k for k, m in enumerate(c.sent) if m.type is MessageType.MSG_APP and m.to == 3)
    assert last_app_to_3 < first_timeout  # caught up first, then told to campaign


def test_transfer_through_follower_is_forwarded() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[3].transfer_leader(2)
    c.stabilize()
    assert c.state(2) is StateType.LEADER


def test_transfer_aborted_after_election_timeout() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.crash(3)
    c.nodes[1].transfer_leader(3)
    assert c.raft(1).lead_transferee == 3
    c.tick(10, ids=[1, 2])
    assert c.raft(1).lead_transferee == 0 and c.state(1) is StateType.LEADER
    c.propose(1, b"ok")
    assert b"ok" in c.data(1)


def test_transfer_to_learner_ignored() -> None:
    c = Cluster([1, 2], learners=[3])
    c.elect(1)
    c.nodes[1].transfer_leader(3)
    c.stabilize()
    assert c.state(1) is StateType.LEADER and c.raft(1).lead_transferee == 0


def test_transfer_forces_vote_through_check_quorum_lease() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    term = c.raft(1).term
    c.nodes[1].transfer_leader(3)
    c.stabilize()
    # 2 had a live leader (lease) yet voted: the campaign is marked as a transfer.
    assert c.state(3) is StateType.LEADER and c.raft(3).term == term + 1


def read(c: Cluster, node: int, ctx: bytes) -> list[ReadState]:
    c.read_states[node].clear()
    c.nodes[node].read_index(ctx)
    c.stabilize()
    return list(c.read_states[node])


def test_read_index_on_leader_needs_quorum_heartbeat() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(1, b"a")
    before = len([m for m in c.sent if m.type is MessageType.MSG_HEARTBEAT])
    got = read(c, 1, b"r1")
    assert got == [ReadState(2, b"r1")]
    assert len([m for m in c.sent if m.type is MessageType.MSG_HEARTBEAT]) > before
    assert c.raft(1).log.last_index() == 2  # no log write


def test_read_index_from_follower() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.propose(1, b"a")
    assert read(c, 3, b"f") == [ReadState(2, b"f")]


def test_read_index_not_answered_without_quorum() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(1)
    assert read(c, 1, b"lonely") == []
    c.heal()
    c.tick(1)
    # Once a quorum acknowledges a later heartbeat, the read is released.
    assert c.raft(1).read_only.pending == {}


def test_read_index_waits_for_commit_in_current_term() -> None:
    c = Cluster([1, 2, 3], check_quorum=False)
    c.elect(1)
    c.propose(1, b"a")
    c.filters.append(lambda m: not (m.frm == 2 and m.type is MessageType.MSG_APP))
    c.elect(2)
    # 2's commit index may trail what 1 committed until its own entry commits.
    assert read(c, 2, b"early") == []
    c.heal()
    c.tick(2)
    got = c.read_states[2]
    assert got and got[0].request_ctx == b"early" and got[0].index >= 3


def test_transfer_retargeted_and_to_self_ignored() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.crash(2)
    c.crash(3)
    c.nodes[1].transfer_leader(2)
    assert c.raft(1).lead_transferee == 2
    c.nodes[1].transfer_leader(3)  # a new target replaces the old one
    assert c.raft(1).lead_transferee == 3
    c.nodes[1].transfer_leader(1)  # to ourselves: just abandons the transfer
    assert c.raft(1).lead_transferee == 0 and c.state(1) is StateType.LEADER
