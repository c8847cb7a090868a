"""Config.lazy_commit: a leader tells followers of a new commit index with its next append
(or heartbeat, or RawNode.send_commit_news) instead of an append of its own, except a
follower whose forwarded proposal it commits, which waits for its client."""

from __future__ import annotations

import pytest

from pyetcd.raft import MessageType

from .cluster import Cluster


def _apps_to(c: Cluster, i: int) -> int:
    return sum(1 for m in c.sent if m.type is MessageType.MSG_APP and m.to == i)


@pytest.mark.parametrize("lazy", [False, True])
def test_a_lazy_leader_sends_one_append_per_proposal_not_two(lazy: bool) -> None:
    c = Cluster([1, 2, 3], lazy_commit=lazy)
    c.elect(1)
    c.sent.clear()
    for k in range(5):
        c.propose(1, b"v%d" % k)
    assert _apps_to(c, 2) == _apps_to(c, 3) == (5 if lazy else 10)
    assert c.raft(1).log.committed == c.raft(1).log.last_index()
    behind = c.raft(1).log.committed - c.raft(2).log.committed
    assert behind == (1 if lazy else 0)  # each append carried the commit of the proposal before it
    assert c.nodes[1].commit_news_owed() is lazy


def test_commit_news_tells_every_follower_once() -> None:
    c = Cluster([1, 2, 3], lazy_commit=True)
    c.elect(1)
    c.propose(1, b"a")
    c.sent.clear()
    c.nodes[1].send_commit_news()
    c.stabilize()
    assert _apps_to(c, 2) == _apps_to(c, 3) == 1
    assert c.raft(2).log.committed == c.raft(3).log.committed == c.raft(1).log.committed
    assert c.data(2) == c.data(3) == [b"a"]
    assert not c.nodes[1].commit_news_owed()
    c.sent.clear()
    c.nodes[1].send_commit_news()  # nothing owed: nothing sent
    c.stabilize()
    assert _apps_to(c, 2) == _apps_to(c, 3) == 0


def test_a_heartbeat_carries_the_commit_index() -> None:
    c = Cluster([1, 2, 3], lazy_commit=True)
    c.elect(1)
    c.propose(1, b"a")
    assert c.nodes[1].commit_news_owed()
    c.tick(c.raft(1).heartbeat_timeout, ids=[1])
    assert c.data(2) == c.data(3) == [b"a"]
    assert not c.nodes[1].commit_news_owed()


def test_a_forwarded_proposal_is_committed_at_its_follower_at_once() -> None:
    c = Cluster([1, 2, 3], lazy_commit=True)
    c.elect(1)
    c.propose(2, b"from 2")  # follower 2 forwards it; its client waits until 2 applies it
    assert c.data(2) == [b"from 2"]
    assert c.data(3) == []  # 3 has it, and learns of its commit later
    assert c.raft(3).log.last_index() == c.raft(1).log.last_index()
    c.propose(1, b"b")
    assert c.data(3) == [b"from 2"]
