"""The Ready/advance contract through RawNode, starting with a single voter."""

from __future__ import annotations

import pytest

from pyetcd.raft import (
    Config,
    ConfState,
    Entry,
    MemoryStorage,
    MessageType,
    ProposalDroppedError,
    RawNode,
    Ready,
    StateType,
    StepLocalMsgError,
)
from pyetcd.raft import Message as Msg

from .cluster import persist


def handle(node: RawNode, storage: MemoryStorage) -> Ready:
    rd = node.ready()
    persist(storage, rd)
    node.advance(rd)
    return rd


def single() -> tuple[RawNode, MemoryStorage]:
    s = MemoryStorage(ConfState(voters=(1,)))
    return RawNode(Config(1, s)), s


def test_single_voter_campaign_becomes_leader_at_once() -> None:
    n, s = single()
    n.campaign()
    rd = handle(n, s)
    assert rd.soft_state is not None and rd.soft_state.raft_state is StateType.LEADER
    assert rd.hard_state is not None and rd.hard_state.term == 1 and rd.hard_state.vote == 1
    assert [e.index for e in rd.entries] == [1] and rd.must_sync
    assert rd.committed_entries == []  # not durable yet when the Ready was made
    rd = handle(n, s)
    assert [e.index for e in rd.committed_entries] == [1]


def test_single_voter_proposal_commits_after_persist() -> None:
    n, s = single()
    n.campaign()
    handle(n, s)
    handle(n, s)
    n.propose(b"hello")
    rd = handle(n, s)
    assert [e.data for e in rd.entries] == [b"hello"]
    assert rd.committed_entries == []
    assert n.has_ready()
    rd = handle(n, s)
    assert [e.data for e in rd.committed_entries] == [b"hello"]
    assert rd.hard_state is not None and rd.hard_state.commit == 2
    assert not n.has_ready()
    assert n.status().applied == 2


def test_proposals_proposed_together_are_appended_together() -> None:
    n, s = single()
    n.campaign()
    handle(n, s)
    handle(n, s)
    n.propose(b"a", b"b", b"c")
    rd = handle(n, s)
    assert [(e.index, e.data) for e in rd.entries] == [(2, b"a"), (3, b"b"), (4, b"c")]


def test_a_follower_forwards_proposals_proposed_together_as_one_message() -> None:
    s = MemoryStorage(ConfState(voters=(1, 2, 3)))
    n = RawNode(Config(1, s))
    n.step(Msg(type=MessageType.MSG_HEARTBEAT, frm=2, to=1, term=1))  # 2 leads term 1
    handle(n, s)
    n.propose(b"x", b"y")
    rd = handle(n, s)
    props = [m for m in rd.messages if m.type is MessageType.MSG_PROP]
    assert [(m.to, [e.data for e in m.entries]) for m in props] == [(2, [b"x", b"y"])]


def test_single_voter_elects_itself_on_election_timeout() -> None:
    n, s = single()
    for _ in range(2 * 10):
        n.tick()
    assert n.raft.state is StateType.LEADER


def test_propose_without_leader_is_dropped() -> None:
    s = MemoryStorage(ConfState(voters=(1, 2, 3)))
    n = RawNode(Config(1, s))
    with pytest.raises(ProposalDroppedError):
        n.propose(b"x")


def test_local_messages_are_refused_from_the_network() -> None:
    n, _ = single()
    with pytest.raises(StepLocalMsgError):
        n.step(Msg(type=MessageType.MSG_HUP, frm=2))


def test_restart_replays_committed_entries_after_applied() -> None:
    n, s = single()
    n.campaign()
    handle(n, s)
    handle(n, s)
    for d in (b"a", b"b"):
        n.propose(d)
    handle(n, s)
    handle(n, s)
    # Restart with applied=1: entries 2 and 3 are committed and come out again.
    n2 = RawNode(Config(1, s, applied=1))
    rd = n2.ready()
    assert [e.data for e in rd.committed_entries] == [b"a", b"b"]


def test_single_voter_read_index_answers_after_commit_in_term() -> None:
    n, s = single()
    n.campaign()
    n.read_index(b"r1")  # our first entry is not committed yet: held back
    rd = handle(n, s)
    assert rd.read_states == []
    rd = handle(n, s)
    assert [(r.index, r.request_ctx) for r in rd.read_states] == [(1, b"r1")]


def test_must_sync_only_for_term_vote_or_entries() -> None:
    c_storage = MemoryStorage(ConfState(voters=(1, 2)))
    n = RawNode(Config(1, c_storage))
    n.campaign()  # pre-candidate: nothing durable changes yet
    rd = n.ready()
    assert rd.hard_state is None and not rd.must_sync
    assert [m.type for m in rd.messages] == [MessageType.MSG_PRE_VOTE]
    persist(c_storage, rd)
    n.advance(rd)
    n.step(Msg(type=MessageType.MSG_PRE_VOTE_RESP, frm=2, to=1, term=1))
    rd = n.ready()  # candidate: term and vote changed, must be fsynced before the MsgVote
    assert rd.hard_state is not None and rd.hard_state.vote == 1 and rd.must_sync
    assert [m.type for m in rd.messages] == [MessageType.MSG_VOTE]
    persist(c_storage, rd)
    n.advance(rd)
    n.step(Msg(type=MessageType.MSG_VOTE_RESP, frm=2, to=1, term=1))
    rd = n.ready()
    assert rd.must_sync and rd.entries  # the leader's empty entry
    persist(c_storage, rd)
    n.advance(rd)
    n.step(Msg(type=MessageType.MSG_APP_RESP, frm=2, to=1, term=1, index=1))
    rd = n.ready()  # only the commit index moved: no fsync needed
    assert rd.hard_state is not None and rd.hard_state.commit == 1 and not rd.must_sync


def test_single_voter_restart_keeps_log_and_campaigns_again() -> None:
    n, s = single()
    n.campaign()
    for _ in range(2):
        handle(n, s)
    n.propose(b"before")
    handle(n, s)
    handle(n, s)
    n2 = RawNode(Config(1, s, applied=s.hard_state.commit))
    assert n2.raft.state is StateType.FOLLOWER and n2.raft.term == 1
    n2.campaign()
    rd = handle(n2, s)
    assert n2.raft.state is StateType.LEADER and n2.raft.term == 2
    assert rd.entries[0].index == 3
    n2.propose(b"after")
    applied = [e for _ in range(2) for e in handle(n2, s).committed_entries]
    assert [(e.index, e.term, e.data) for e in applied] == [(3, 2, b""), (4, 2, b"after")]


def test_status_reports_progress_on_leader() -> None:
    n, s = single()
    n.campaign()
    handle(n, s)
    handle(n, s)
    st = n.status()
    assert st.id == 1 and st.soft_state.raft_state is StateType.LEADER and st.applied == 1
    assert st.progress[1].match == 1 and st.progress[1].next == 2
    assert st.conf_state.voters == (1,)


def test_step_between_ready_and_advance_replacing_entries() -> None:
    s = MemoryStorage(ConfState(voters=(1, 2, 3)))
    n = RawNode(Config(2, s))
    e1, e2 = Entry(1, 1, data=b"a"), Entry(1, 2, data=b"b")
    n.step(Msg(type=MessageType.MSG_APP, frm=1, to=2, term=1, index=0, log_term=0, entries=(e1, e2)))
    rd = n.ready()
    assert rd.entries == [e1, e2]
    # While rd is being persisted, a new leader replaces entry 2.
    e2b = Entry(2, 2, data=b"c")
    n.step(Msg(type=MessageType.MSG_APP, frm=3, to=2, term=2, index=1, log_term=1, entries=(e2b,)))
    persist(s, rd)
    n.advance(rd)
    assert n.raft.log.persisted == 0  # conservatively, nothing of the stale Ready counts as stable
    rd = n.ready()
    assert rd.entries == [e1, e2b]
    persist(s, rd)
    n.advance(rd)
    assert n.raft.log.persisted == 2 and [s.term(i) for i in (1, 2)] == [1, 2]
