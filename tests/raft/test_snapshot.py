"""Log compaction and snapshots: a leader whose needed entries are gone sends a snapshot."""

from __future__ import annotations

from pyetcd.raft import (
    ConfState,
    MessageType,
    ProgressState,
    Snapshot,
    SnapshotMetadata,
    SnapshotTemporarilyUnavailableError,
    StateType,
)

from .cluster import Cluster


def compact(c: Cluster, i: int, data: bytes = b"state") -> None:
    st = c.storage[i]
    applied = c.raft(i).log.applied
    st.create_snapshot(applied, c.raft(i).tracker.conf_state(), data)
    st.compact(applied)


def test_lagging_follower_gets_snapshot_then_entries() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.crash(3)
    for n in range(10):
        c.propose(1, b"v%d" % n)
    compact(c, 1)
    c.propose(1, b"after")
    assert c.storage[1].first_index() == 12
    c.restart(3)
    c.tick(3)
    snaps = [m for m in c.sent if m.type is MessageType.MSG_SNAP and m.to == 3]
    assert len(snaps) == 1 and snaps[0].snapshot is not None
    assert snaps[0].snapshot.metadata.index == 11 and snaps[0].snapshot.data == b"state"
    assert c.storage[3].snapshot().metadata.index == 11
    assert c.raft(3).log.last_index() == c.raft(1).log.last_index() == 12
    assert c.data(3) == [b"after"]  # the rest came in the snapshot
    assert c.raft(1).tracker.progress[3].state is ProgressState.REPLICATE


def test_failed_snapshot_is_retried() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.leave_behind(3, 1, 3)
    compact(c, 1)
    c.filters.append(lambda m: m.type is not MessageType.MSG_SNAP)
    c.tick(2)
    pr = c.raft(1).tracker.progress[3]
    assert pr.state is ProgressState.SNAPSHOT and pr.is_paused()
    c.nodes[1].report_snapshot(3, failed=True)
    assert pr.state is ProgressState.PROBE
    c.heal()
    c.tick(3)
    assert c.storage[3].snapshot().metadata.index == 4
    assert pr.state is ProgressState.REPLICATE


def test_follower_ignores_snapshot_it_already_has() -> None:
    c = Cluster([1, 2])
    c.elect(1)
    c.propose(1, b"a")
    r = c.raft(2)
    snap = Snapshot(b"", SnapshotMetadata(1, 1, ConfState(voters=(1, 2))))
    assert not r.restore(snap)  # older than the commit index
    assert r.log.last_index() == 2


def test_snapshot_fast_forwards_commit_when_entries_match() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.cut(1, 3)
    c.propose(1, b"a")
    r3 = c.raft(3)
    term = c.raft(1).term
    # 3 holds index 1 (term 1) but its commit index trails; a snapshot at (1, term) only
    # moves its commit forward.
    r3.log.committed = 0
    snap = Snapshot(b"", SnapshotMetadata(1, term, ConfState(voters=(1, 2, 3))))
    assert not r3.restore(snap)
    assert r3.log.committed == 1 and r3.log.unstable.snapshot is None


def test_restart_from_snapshot_and_log() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    for n in range(5):
        c.propose(1, b"v%d" % n)
    compact(c, 2)
    c.crash(2)
    c.propose(1, b"w")
    c.restart(2)
    c.tick(2)
    assert c.raft(2).log.first_index() == 7
    assert c.data(2) == [b"w"]
    assert c.state(2) is StateType.FOLLOWER and c.raft(2).lead == 1


def test_snapshot_temporarily_unavailable_is_retried_later() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.leave_behind(3, 1, 3)
    compact(c, 1)
    st = c.storage[1]
    real = st.snapshot
    busy = [True]

    def snapshot() -> Snapshot:
        if busy[0]:
            raise SnapshotTemporarilyUnavailableError("still being written")
        return real()

    st.snapshot = snapshot  # type: ignore[method-assign]
    c.tick(3)
    assert not [m for m in c.sent if m.type is MessageType.MSG_SNAP]
    assert c.raft(1).tracker.progress[3].state is not ProgressState.SNAPSHOT
    busy[0] = False
    c.tick(3)
    assert c.storage[3].snapshot().metadata.index == 4
