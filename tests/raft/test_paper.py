"""The Raft paper's five safety properties (Figure 3), each shown on a deliberate schedule,
and the Figure 8 case. The simulator (test_sim.py) checks the same properties at every
step of randomized hostile schedules."""

from __future__ import annotations

import pytest

from pyetcd.raft import Message, MessageType, StateType
from pyetcd.raft.log import RaftLog

from .cluster import Cluster


def test_election_safety_at_most_one_leader_per_term() -> None:
    # Two nodes campaign in the same term from opposite sides of a 5-node cluster.
    c = Cluster([1, 2, 3, 4, 5], pre_vote=False)
    c.cut(1, 5)
    c.nodes[1].campaign()
    c.nodes[5].campaign()
    c.stabilize()
    assert c.raft(1).term == c.raft(5).term == 1
    leaders = [i for i in range(1, 6) if c.state(i) is StateType.LEADER]
    assert len(leaders) <= 1
    votes = [c.raft(i).vote for i in (2, 3, 4)]
    assert all(v in (1, 5) for v in votes)  # each voter voted once, for one of them


def test_log_matching_same_index_and_term_means_same_prefix() -> None:
    c = Cluster(
        [1, 2, 3], logs={1: [1, 1, 2], 2: [1, 1, 2], 3: [1, 3]}, terms={1: 3, 2: 3, 3: 3}, pre_vote=False
    )
    c.elect(1)  # 3's entry (2, term 3) is not from a leader that won; 1 wins with 2's vote
    c.propose(1, b"z")
    logs = {i: c.log_terms(i) for i in (1, 2, 3)}
    for a in logs.values():
        for b in logs.values():
            shared = set(a) & set(b)
            for idx, _ in shared:
                assert a[:idx] == b[:idx]
    # And a follower refuses entries whose predecessor does not match.
    r = c.raft(2)
    last = r.log.last_index()
    r.step(Message(type=MessageType.MSG_APP, frm=1, to=2, term=r.term, index=last, log_term=9, entries=()))
    assert r.msgs[-1].reject


def test_leader_completeness_stale_log_cannot_win() -> None:
    c = Cluster([1, 2, 3], pre_vote=False)
    c.elect(1)
    c.cut(1, 3)
    c.propose(1, b"committed")  # committed by 1 and 2
    assert c.raft(1).log.committed == 2 and c.raft(3).log.last_index() == 1
    c.crash(1)
    c.heal()
    c.nodes[3].campaign()
    c.stabilize()
    assert c.state(3) is not StateType.LEADER  # 2 refuses: 3 lacks a committed entry
    c.tick(60)
    assert c.leader() == 2  # only 2 can win, however often 3 tries
    assert b"committed" in c.data(3)


def test_leader_append_only_ignores_lower_term_appends() -> None:
    c = Cluster([1, 2, 3], terms={1: 3, 2: 3, 3: 3})
    c.elect(1)
    c.propose(1, b"a")
    r = c.raft(1)
    before = c.log_terms(1)
    # A stale append from an older term that conflicts with the leader's log.
    r.step(Message(type=MessageType.MSG_APP, frm=2, to=1, term=r.term - 1, index=1, log_term=1, entries=()))
    assert c.log_terms(1) == before and r.state is StateType.LEADER
    assert r.msgs[-1].type is MessageType.MSG_APP_RESP and r.msgs[-1].term == r.term


def test_state_machine_safety_through_crashes() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    for n in range(5):
        c.propose(1, b"a%d" % n)
    c.crash(2)
    for n in range(5):
        c.propose(1, b"b%d" % n)
    c.crash(1)
    c.restart(2)
    c.tick(40)
    new = c.leader()
    assert new in (2, 3)
    c.propose(new, b"c")
    c.restart(1)
    c.tick(5)
    expected = [b"a%d" % n for n in range(5)] + [b"b%d" % n for n in range(5)] + [b"c"]
    for i in (1, 2, 3):
        assert c.data(i) == expected
        assert [(e.index, e.term) for e in c.applied[i]] == [(e.index, e.term) for e in c.applied[new]]


def _figure_8_prefix() -> Cluster:
    """(a) S1 leads term 2 and replicates index 2 only to S2. (b) S1 crashes; S5 wins term 3
    with S3, S4 and appends its own index 2 that nobody else gets. (c) S5 crashes; S1 wins
    term 4 with S2, S3 and replicates its index-2 entry (term 2) to S3: a majority holds it."""
    c = Cluster([1, 2, 3, 4, 5], pre_vote=False, check_quorum=False, max_size_per_msg=0)
    c.elect(1)  # term 1: the empty entry at index 1 everywhere
    # (a)
    c.isolate(1)
    c.cut_links -= {(1, 2), (2, 1)}
    c.nodes[1].propose(b"from-term-1")
    c.stabilize()
    assert c.log_terms(2)[-1] == (2, 1) and c.log_terms(3)[-1] == (1, 1)
    # (b)
    c.crash(1)
    c.heal()
    c.cut(5, 2)
    c.filters.append(lambda m: not (m.frm == 5 and m.type is MessageType.MSG_APP))
    c.elect(5)
    t5 = c.raft(5).term
    assert c.log_terms(5)[-1] == (2, t5) and c.log_terms(3)[-1] == (1, 1)
    # (c)
    c.crash(5)
    c.heal()
    c.restart(1)
    # Only the first append (index 2, the old entry) gets through to S3; S1's own new
    # entry at index 3 reaches nobody.
    c.filters.append(lambda m: not (m.frm == 1 and any(e.index >= 3 for e in m.entries)))
    c.cut(1, 4)
    c.elect(1)
    for f in (2, 3):  # probe S2 and S3 from index 2 (S3 lacks it; S2 acknowledges it)
        pr = c.raft(1).tracker.progress[f]
        pr.next, pr.probe_sent = 2, False
        c.raft(1).send_append(f)
    c.stabilize()
    assert [c.raft(1).tracker.progress[f].match for f in (2, 3)] == [2, 2]
    assert c.log_terms(3)[-1] == (2, 1) and c.log_terms(2)[-1] == (2, 1)
    return c


def test_figure_8_old_term_entry_on_majority_is_not_committed() -> None:
    c = _figure_8_prefix()
    # Index 2 (term 1) sits on S1, S2, S3 — a majority — but is from an older term.
    assert c.raft(1).log.committed == 1
    assert all(b"from-term-1" not in c.data(i) for i in range(1, 6))
    # (d) S1 crashes; S5 can still win (its last term beats S2's and S3's) and overwrites
    # index 2 everywhere. Had S1 committed it, a committed entry would be lost here.
    c.crash(1)
    c.heal()
    c.restart(5)
    c.elect(5)
    c.tick(3)
    t = c.log_terms(5)[1]
    for i in (2, 3, 4, 5):
        assert c.log_terms(i)[1] == t and t[1] != 1
        assert b"from-term-1" not in c.data(i)


def test_figure_8_entry_commits_with_a_current_term_entry() -> None:
    c = _figure_8_prefix()
    # (e) S1 replicates an entry of its own term to a majority: both commit, and S5 can
    # no longer win an election.
    c.heal()
    c.cut(1, 5)
    c.tick(3, ids=[1, 2, 3, 4])
    assert c.raft(1).log.committed >= 3
    assert b"from-term-1" in c.data(1)
    c.crash(1)
    c.restart(5)
    c.nodes[5].campaign()
    c.stabilize()
    assert c.state(5) is not StateType.LEADER
    c.tick(60, ids=[2, 3, 4, 5])
    lead = c.leader()
    assert lead != 5 or b"from-term-1" in c.data(5)
    assert all(b"from-term-1" in c.data(i) for i in (2, 3, 4))


@pytest.mark.parametrize("voters", [3, 5])
def test_commit_requires_majority_of_voters(voters: int) -> None:
    ids = list(range(1, voters + 1))
    c = Cluster(ids)
    c.elect(1)
    minority = ids[1 : voters // 2]  # with the leader: one short of a majority
    for j in ids[1:]:
        if j not in minority:
            c.cut(1, j)
    c.propose(1, b"m")
    assert c.raft(1).log.committed == 1
    c.heal()
    c.tick(2)
    assert c.raft(1).log.committed == 2


def test_figure_8_schedule_breaks_a_core_that_commits_old_terms_by_counting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same schedule against a core without the current-term rule: S1 commits and
    applies the old entry, then S5 overwrites it — a committed entry lost. This is what
    the rule (and the test above) guards against."""

    def count_only(self: RaftLog, max_index: int, term: int) -> bool:
        if max_index > self.committed:
            self.commit_to(max_index)
            return True
        return False

    monkeypatch.setattr(RaftLog, "maybe_commit", count_only)
    c = _figure_8_prefix()
    assert b"from-term-1" in c.data(1)  # committed and applied by S1
    c.crash(1)
    c.heal()
    c.restart(5)
    c.elect(5)
    c.tick(3)
    assert c.log_terms(2)[1] != (2, 1)  # ...and gone from the surviving majority
