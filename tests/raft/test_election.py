"""Leader election: randomized timeouts, votes, pre-vote and check-quorum."""

from __future__ import annotations

from pyetcd.raft import Config, ConfState, MemoryStorage, Message, MessageType, StateType
from pyetcd.raft.raft import Raft

from .cluster import Cluster


def test_a_leader_emerges_from_ticks_alone() -> None:
    c = Cluster([1, 2, 3])
    c.tick(30)
    leaders = [i for i in (1, 2, 3) if c.state(i) is StateType.LEADER]
    assert len(leaders) == 1
    lead = leaders[0]
    assert all(c.raft(i).lead == lead for i in (1, 2, 3))
    assert all(c.raft(i).term == c.raft(lead).term for i in (1, 2, 3))


def test_randomized_election_timeout_in_range_and_seeded() -> None:
    st = MemoryStorage(ConfState(voters=(1, 2, 3)))
    r = Raft(Config(1, st, election_tick=10, seed=7))
    seen = set()
    for _ in range(200):
        r.reset_randomized_election_timeout()
        seen.add(r.randomized_election_timeout)
    assert min(seen) >= 10 and max(seen) < 20 and len(seen) > 5
    r2 = Raft(Config(1, st, election_tick=10, seed=7))
    r3 = Raft(Config(1, st, election_tick=10, seed=7))
    assert [r2.rng.random() for _ in range(5)] == [r3.rng.random() for _ in range(5)]


def test_one_vote_per_term() -> None:
    c = Cluster([1, 2, 3], pre_vote=False)
    c.isolate(1)
    c.nodes[2].campaign()  # term 1: 2 votes for itself, 3 votes for 2
    c.stabilize()
    assert c.state(2) is StateType.LEADER
    r3 = c.raft(3)
    # 3 already voted for 2 in term 1 and must refuse 1 in the same term.
    r3.step(Message(type=MessageType.MSG_VOTE, frm=1, to=3, term=1, index=0, log_term=0))
    resp = r3.msgs[-1]
    assert resp.type is MessageType.MSG_VOTE_RESP and resp.reject and r3.vote == 2


def test_vote_refused_to_candidate_with_stale_log() -> None:
    c = Cluster([1, 2, 3], logs={1: [1], 2: [1, 1], 3: [1, 1]}, terms={1: 1, 2: 1, 3: 1}, pre_vote=False)
    c.nodes[1].campaign()
    c.stabilize()
    assert c.state(1) is not StateType.LEADER
    assert c.raft(2).vote != 1 and c.raft(3).vote != 1


def test_pre_vote_does_not_raise_terms_of_a_partitioned_node() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    term = c.raft(1).term
    c.isolate(3)
    c.tick(100, ids=[3])
    # Without pre-vote node 3 would have inflated its term by campaigning alone.
    assert c.raft(3).term == term and c.state(3) is StateType.PRE_CANDIDATE
    c.heal()
    for _ in range(50):  # the rejoined member never deposes the healthy leader
        c.tick(1)
        assert c.leader() == 1 and c.raft(1).term == term


def test_check_quorum_lease_ignores_disruptive_votes() -> None:
    # Without pre-vote, a rejoining node arrives with a higher term; check-quorum's lease
    # makes members that hear from a live leader ignore its vote requests.
    c = Cluster([1, 2, 3], pre_vote=False)
    c.elect(1)
    c.isolate(3)
    for _ in range(3):
        c.nodes[3].campaign()
        c.stabilize()
    assert c.raft(3).term > c.raft(1).term
    c.heal()
    c.nodes[3].campaign()
    c.stabilize()
    assert c.state(3) is not StateType.LEADER
    # The stale-term exchange eventually settles on one leader again.
    c.tick(40)
    assert len([i for i in (1, 2, 3) if c.state(i) is StateType.LEADER]) == 1


def test_check_quorum_leader_steps_down_when_cut_off() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(1)
    c.tick(25)
    assert c.state(1) is StateType.FOLLOWER
    assert c.leader() in (2, 3)


def test_leader_without_check_quorum_stays_when_cut_off() -> None:
    c = Cluster([1, 2, 3], check_quorum=False)
    c.elect(1)
    c.isolate(1)
    c.tick(25, ids=[1])
    assert c.state(1) is StateType.LEADER


def test_stale_leader_steps_down_on_higher_term() -> None:
    c = Cluster([1, 2, 3], check_quorum=False)
    c.elect(1)
    c.isolate(1)
    c.tick(40, ids=[2, 3])
    new = c.leader()
    assert new != 1 and c.raft(new).term > c.raft(1).term
    c.heal()
    c.tick(2)
    assert c.state(1) is StateType.FOLLOWER and c.raft(1).lead == new


def test_candidate_needs_majority_in_even_cluster() -> None:
    c = Cluster([1, 2, 3, 4], pre_vote=False)
    c.cut(1, 3)
    c.cut(1, 4)
    c.nodes[1].campaign()
    c.stabilize()
    assert c.state(1) is StateType.CANDIDATE  # 2 of 4 is not a majority
    c.heal()
    c.nodes[1].campaign()
    c.stabilize()
    assert c.state(1) is StateType.LEADER


def test_learner_never_campaigns() -> None:
    c = Cluster([1, 2], learners=[3])
    c.tick(100, ids=[3])
    assert c.state(3) is StateType.FOLLOWER and c.raft(3).term == 0


def test_single_voter_pre_vote_and_election_in_one_step() -> None:
    c = Cluster([1])
    c.nodes[1].campaign()
    c.stabilize()
    assert c.state(1) is StateType.LEADER and c.raft(1).term == 1
