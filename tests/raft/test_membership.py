"""Membership changes, one at a time with etcd's rules; learners."""

from __future__ import annotations

import pytest

from pyetcd.raft import ConfChange, ConfChangeType, EntryType, MessageType, ProposalDroppedError, StateType

from .cluster import Cluster

ADD, REMOVE, LEARNER = ConfChangeType.ADD_NODE, ConfChangeType.REMOVE_NODE, ConfChangeType.ADD_LEARNER_NODE


def change(c: Cluster, lead: int, t: ConfChangeType, node: int) -> None:
    c.nodes[lead].propose_conf_change(ConfChange(t, node))
    c.stabilize()


def voters(c: Cluster, i: int) -> set[int]:
    return set(c.raft(i).tracker.voters)


def test_conf_change_round_trips_as_entry_data() -> None:
    cc = ConfChange(LEARNER, 42, b"peer-url")
    assert ConfChange.decode(cc.encode()) == cc
    with pytest.raises(ValueError):
        ConfChange.decode(b"\x00")


def test_add_voter_then_it_counts_for_quorum() -> None:
    c = Cluster([1, 2, 3], spares=[4])
    c.elect(1)
    change(c, 1, ADD, 4)
    c.tick(2)
    assert all(voters(c, i) == {1, 2, 3, 4} for i in (1, 2, 3, 4))
    # With 4 voters, the leader plus one is no longer a quorum.
    c.cut(1, 3)
    c.cut(1, 4)
    c.propose(1, b"x")
    assert b"x" not in c.data(1)
    c.heal()
    c.tick(2)
    assert all(b"x" in c.data(i) for i in (1, 2, 3, 4))


def test_learner_receives_log_but_never_votes_or_counts() -> None:
    c = Cluster([1, 2, 3], spares=[4])
    c.elect(1)
    change(c, 1, LEARNER, 4)
    c.propose(1, b"y")
    c.tick(2)
    assert c.data(4) == [b"y"] and c.raft(4).is_learner
    assert voters(c, 1) == {1, 2, 3} and c.raft(1).tracker.learners == {4}
    # The learner's acknowledgement does not help commit.
    c.cut(1, 2)
    c.cut(1, 3)
    c.propose(1, b"z")
    assert b"z" not in c.data(1) and c.raft(4).log.last_index() == c.raft(1).log.last_index()
    # Nobody asks a learner for a vote, and it never campaigns.
    c.heal()
    c.tick(50, ids=[4])
    assert c.state(4) is StateType.FOLLOWER
    assert not [m for m in c.sent if m.type in (MessageType.MSG_VOTE, MessageType.MSG_PRE_VOTE) and m.to == 4]


def test_promote_learner_to_voter() -> None:
    c = Cluster([1, 2, 3], learners=[4])
    c.elect(1)
    change(c, 1, ADD, 4)
    c.tick(2)
    assert not c.raft(4).is_learner and voters(c, 4) == {1, 2, 3, 4}
    assert c.raft(1).tracker.learners == set()
    c.crash(1)
    c.tick(60, ids=[2, 3, 4])
    assert c.leader() in (2, 3, 4)


def test_voter_is_never_demoted_to_learner() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    change(c, 1, LEARNER, 3)
    assert voters(c, 1) == {1, 2, 3} and c.raft(1).tracker.learners == set()


def test_remove_voter_shrinks_quorum() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    change(c, 1, REMOVE, 3)
    c.crash(3)
    c.propose(1, b"two-of-two")
    assert c.data(1) == [b"two-of-two"] and voters(c, 1) == {1, 2}


def test_remove_follower_unblocks_commit() -> None:
    c = Cluster([1, 2, 3, 4])
    c.elect(1)
    c.crash(3)
    c.crash(4)
    c.nodes[1].propose(b"stuck")
    change(c, 1, REMOVE, 4)  # cannot commit either: 2 of 4
    assert c.raft(1).log.committed < c.raft(1).log.last_index()
    c.restart(4)
    c.tick(2)
    assert voters(c, 1) == {1, 2, 3} and b"stuck" in c.data(1)


def test_removed_leader_hands_off_and_steps_down() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    change(c, 1, REMOVE, 1)
    # Everyone holds its whole log, so it hands off at once: no election timeout to wait for.
    assert any(m.type is MessageType.MSG_TIMEOUT_NOW and m.frm == 1 for m in c.sent)
    assert c.state(1) is StateType.FOLLOWER and voters(c, 1) == {2, 3}
    new = c.leader()
    assert new in (2, 3)
    c.propose(new, b"after")
    assert b"after" in c.data(2) and b"after" in c.data(3)
    c.tick(60)
    assert c.state(1) is StateType.FOLLOWER  # not a voter any more: never campaigns


def test_removed_leader_of_two_waits_until_survivor_has_its_log() -> None:
    # With voters {1, 2}, 1 removes itself and appends "x" before the removal applies.
    # Had 1 stepped down at once, 2 (not yet knowing the removal committed) would need 1's
    # vote, which 1 refuses while its log is longer: stuck for good.
    c = Cluster([1, 2], max_size_per_msg=0)
    c.elect(1)
    c.filters.append(lambda m: not (m.to == 2 and any(e.data == b"x" for e in m.entries)))
    c.nodes[1].propose_conf_change(ConfChange(REMOVE, 1))
    c.nodes[1].propose(b"x")
    c.stabilize()
    assert voters(c, 1) == {2} and c.state(1) is StateType.LEADER  # removed, still replicating
    with pytest.raises(ProposalDroppedError):
        c.nodes[1].propose(b"refused")
    c.heal()
    c.tick(3)
    assert c.state(1) is StateType.FOLLOWER and c.state(2) is StateType.LEADER
    c.propose(2, b"after")
    assert c.data(2)[-2:] == [b"x", b"after"]


def test_only_one_pending_conf_change() -> None:
    c = Cluster([1, 2, 3], spares=[4, 5])
    c.elect(1)
    c.cut(1, 3)  # 2 stays connected so that it can forward; nothing commits without 3...
    c.filters.append(lambda m: not (m.type is MessageType.MSG_APP_RESP and m.frm == 2))
    c.nodes[1].propose_conf_change(ConfChange(ADD, 4))
    c.stabilize()
    # A second change proposed on the leader is refused outright...
    with pytest.raises(ProposalDroppedError):
        c.nodes[1].propose_conf_change(ConfChange(ADD, 5))
    # ...and one forwarded by a follower is turned into an empty entry (etcd's rule).
    c.nodes[2].propose_conf_change(ConfChange(ADD, 5))
    c.stabilize()
    log = c.raft(1).log
    ents = log.slice(2, log.last_index() + 1)
    assert [(e.type, e.data) for e in ents] == [
        (EntryType.CONF_CHANGE, ConfChange(ADD, 4).encode()),
        (EntryType.NORMAL, b""),
    ]
    c.heal()
    c.tick(3)
    assert voters(c, 1) == {1, 2, 3, 4}


def test_new_leader_waits_for_own_term_entry_before_conf_change() -> None:
    c = Cluster([1, 2, 3], spares=[4], check_quorum=False)
    c.elect(1)
    c.propose(1, b"a")
    # 2 wins an election, but its own empty entry reaches nobody: it must not change
    # membership yet, though every entry of earlier terms is applied.
    c.filters.append(lambda m: not (m.frm == 2 and m.type is MessageType.MSG_APP))
    c.elect(2)
    r = c.raft(2)
    assert r.log.applied == r.log.last_index() - 1 and r.pending_conf_index == r.log.last_index()
    with pytest.raises(ProposalDroppedError):
        c.nodes[2].propose_conf_change(ConfChange(ADD, 4))
    c.heal()
    c.tick(2)
    change(c, 2, ADD, 4)
    assert voters(c, 2) == {1, 2, 3, 4}


def test_no_campaign_with_committed_but_unapplied_conf_change() -> None:
    c = Cluster([1, 2, 3], spares=[4])
    c.elect(1)
    # 2 learns that the change is committed, but its application has not applied it yet.
    c.filters.append(lambda m: not (m.to == 2 and m.type is MessageType.MSG_HEARTBEAT))
    c.nodes[1].propose_conf_change(ConfChange(ADD, 4))
    c.stabilize()
    r2 = c.raft(2)
    r2.log.applied = r2.log.committed - 1  # as if the application lagged by one entry
    r2.log.committed = r2.log.last_index()
    assert r2.log.slice(r2.log.applied + 1, r2.log.committed + 1)[-1].type is EntryType.CONF_CHANGE
    c.isolate(2)
    c.nodes[2].campaign()
    # It would count votes with a configuration its own log already changed: it refuses.
    assert c.state(2) is StateType.FOLLOWER and r2.term == c.raft(1).term


def test_promoting_a_caught_up_learner_can_advance_commit() -> None:
    c = Cluster([1, 2], learners=[3])
    c.elect(1)
    c.crash(2)
    c.propose(1, b"needs-two")  # 1 of 2 voters: not committed; the learner has it
    assert b"needs-two" not in c.data(1) and c.raft(3).log.last_index() == c.raft(1).log.last_index()
    r1 = c.raft(1)
    # Apply the promotion directly (the conf change itself could not commit without 2):
    # with voters {1, 2, 3}, 1 and 3 already hold the entry, which now commits.
    r1.apply_conf_change(ConfChange(ADD, 3))
    c.stabilize()
    assert b"needs-two" in c.data(1) and b"needs-two" in c.data(3)


def test_removed_leader_of_two_cut_off_before_handing_off_campaigns_to_hand_off() -> None:
    c = Cluster([1, 2], max_size_per_msg=0)
    c.elect(1)
    c.filters.append(lambda m: not (m.to == 2 and any(e.data == b"x" for e in m.entries)))
    c.nodes[1].propose_conf_change(ConfChange(REMOVE, 1))
    c.nodes[1].propose(b"x")
    c.stabilize()
    assert voters(c, 1) == {2} and c.state(1) is StateType.LEADER
    c.isolate(1)
    c.tick(60)  # check-quorum makes 1 step down; 2 alone cannot win (1's vote, longer log)
    assert c.state(1) is not StateType.LEADER and c.state(2) is not StateType.LEADER
    c.heal()
    c.tick(60)
    # 1 campaigns among the remaining voters only, leads again, then hands off to 2.
    assert c.state(2) is StateType.LEADER and c.state(1) is StateType.FOLLOWER
    c.propose(2, b"after")
    assert c.data(2)[-2:] == [b"x", b"after"]
    c.tick(60)
    assert c.leader() == 2  # 1 stays quiet now


def test_removed_leader_stops_campaigning_once_the_cluster_moved_on() -> None:
    c = Cluster([1, 2, 3], check_quorum=False, max_size_per_msg=0)
    c.elect(1)
    c.filters.append(lambda m: not (m.to in (2, 3) and any(e.data == b"x" for e in m.entries)))
    c.nodes[1].propose_conf_change(ConfChange(REMOVE, 1))
    c.nodes[1].propose(b"x")
    c.stabilize()
    # 1 applied its removal but no voter holds "x": it cannot hand off yet.
    assert voters(c, 1) == {2, 3} and c.state(1) is StateType.LEADER and c.raft(1).handoff_pending
    c.heal()
    c.isolate(1)
    c.tick(60, ids=[2, 3])
    lead = c.leader()
    assert lead in (2, 3)
    for n in range(3):
        c.propose(lead, b"n%d" % n)  # the others move past 1's log
    c.heal()
    c.tick(60)
    # 1 learned the new term, tried to campaign, was refused by voters holding entries it
    # lacks, and gave up: the new leader is left alone.
    assert not c.raft(1).handoff_pending and c.state(1) is StateType.FOLLOWER
    assert c.leader() == lead
