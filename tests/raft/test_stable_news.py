"""Config.stable_news: a leader tells a follower whose forwarded proposal it holds durably how
far its log is durable (MSG_STABLE); the follower commits what both hold once its own copy is
durable, when the two are a quorum of the same voters, without waiting for the leader's
commit index. The leader's read index covers what it told."""

from __future__ import annotations

import pytest

from pyetcd.raft import Message, MessageType
from pyetcd.raft.types import encode_voters

from .cluster import Cluster

M = MessageType


def _no_acks_reach(c: Cluster, lead: int) -> None:
    """The leader never hears that a follower holds an entry: it cannot commit anything new."""
    c.filters.append(lambda m: not (m.type is M.MSG_APP_RESP and m.to == lead))


@pytest.mark.parametrize("stable_news", [False, True])
def test_a_follower_commits_its_forwarded_proposal_before_the_leader_can(stable_news: bool) -> None:
    c = Cluster([1, 2, 3], lazy_commit=True, stable_news=stable_news)
    c.elect(1)
    _no_acks_reach(c, 1)
    c.propose(2, b"from 2")
    assert c.raft(1).log.committed < c.raft(1).log.last_index()  # the leader has no quorum yet
    assert c.data(2) == ([b"from 2"] if stable_news else [])
    assert c.data(3) == []  # 3 forwarded nothing: it was told nothing


def test_the_leaders_read_index_covers_what_a_follower_committed_before_it() -> None:
    c = Cluster([1, 2, 3], lazy_commit=True, stable_news=True)
    c.elect(1)
    _no_acks_reach(c, 1)
    c.propose(2, b"from 2")
    ahead = c.raft(2).log.committed
    assert ahead > c.raft(1).log.committed
    c.nodes[1].read_index(b"read")
    c.stabilize()
    (state,) = c.read_states[1]
    assert state.index >= ahead  # served only once the leader has applied the follower's write


@pytest.mark.parametrize("voters", [5, 4])
def test_two_members_that_are_no_quorum_commit_nothing_between_them(voters: int) -> None:
    c = Cluster(range(1, voters + 1), lazy_commit=True, stable_news=True)
    c.elect(1)
    _no_acks_reach(c, 1)
    c.propose(2, b"from 2")
    assert c.data(2) == []


def _durable_but_uncommitted(c: Cluster) -> int:
    """Follower 2 holds its forwarded proposal durably and was told nothing: its index."""
    c.elect(1)
    _no_acks_reach(c, 1)
    c.filters.append(lambda m: m.type is not M.MSG_STABLE)
    c.propose(2, b"from 2")
    r2 = c.raft(2)
    assert r2.log.persisted == r2.log.last_index() > r2.log.committed
    return r2.log.last_index()


def _stable(c: Cluster, frm: int, index: int, voters: set[int], term: int | None = None) -> Message:
    return Message(type=M.MSG_STABLE, to=2, frm=frm, term=term or c.raft(1).term, index=index,
                   context=encode_voters(voters))


def test_a_follower_commits_only_on_the_word_of_its_leader_about_its_own_voters() -> None:
    c = Cluster([1, 2, 3], spares=[4], lazy_commit=True, stable_news=True)
    last = _durable_but_uncommitted(c)
    r2 = c.raft(2)
    for refused in (
        _stable(c, 1, last, {1, 2, 3, 4}),  # the leader counts a voter we have not applied yet
        _stable(c, 3, last, {1, 2, 3}),  # not from the leader
        _stable(c, 1, last, {1, 2, 3}, term=c.raft(1).term - 1),  # from an older term
    ):
        c.nodes[2].step(refused)
        c.stabilize()
        assert r2.log.committed < last and c.data(2) == []
    c.nodes[2].step(_stable(c, 1, last - 1, {1, 2, 3}))  # durable at the leader short of ours
    c.stabilize()
    assert r2.log.committed == last - 1 and c.data(2) == []
    c.nodes[2].step(_stable(c, 1, last + 5, {1, 2, 3}))  # beyond ours: ours is what both hold
    c.stabilize()
    assert r2.log.committed == last and c.data(2) == [b"from 2"]


@pytest.mark.parametrize("stable_news", [False, True])
@pytest.mark.parametrize("committed_by", ["either", "the other follower"])
def test_a_follower_that_commits_itself_is_sent_no_commit_news(stable_news: bool, committed_by: str) -> None:
    c = Cluster([1, 2, 3], lazy_commit=True, stable_news=stable_news)
    c.elect(1)
    if committed_by == "the other follower":  # 2's answer comes too late to count
        c.filters.append(lambda m: not (m.type is M.MSG_APP_RESP and m.frm == 2))
    c.sent.clear()
    c.propose(2, b"from 2")
    assert c.data(2) == [b"from 2"]
    to_2 = [m.type for m in c.sent if m.to == 2]
    assert to_2 == ([M.MSG_APP, M.MSG_STABLE] if stable_news else [M.MSG_APP, M.MSG_APP])


def test_a_follower_that_does_not_take_stable_news_is_told_the_commit_as_before() -> None:
    c = Cluster([1, 2, 3], lazy_commit=True, stable_news=True)
    c.raft(2).stable_news = False  # as a member of an older build: its answers do not say it takes MSG_STABLE
    c.elect(1)
    c.sent.clear()
    c.propose(2, b"from 2")
    assert c.data(2) == [b"from 2"]
    to_2 = [m.type for m in c.sent if m.to == 2]
    assert to_2 == [M.MSG_APP, M.MSG_APP]  # the append, then the commit news


def test_a_follower_that_stops_taking_stable_news_is_told_the_commit_again() -> None:
    c = Cluster([1, 2, 3], lazy_commit=True, stable_news=True)
    c.elect(1)
    c.propose(2, b"first")
    c.raft(2).stable_news = False  # restarted on an older build, say
    c.sent.clear()
    c.propose(2, b"second")
    assert c.data(2) == [b"first", b"second"]
    to_2 = [m.type for m in c.sent if m.to == 2]
    assert to_2.count(M.MSG_APP) == 2  # the append, then the commit news its answer asked for
