"""The raft log: unstable tail over storage, conflicts, commit and persistence tracking."""

from __future__ import annotations

import pytest

from pyetcd.raft import ConfState, Entry, MemoryStorage, RaftError, Snapshot, SnapshotMetadata
from pyetcd.raft.log import RaftLog


def make_log(stable: list[int], unstable: tuple[int, ...] = ()) -> RaftLog:
    s = MemoryStorage(ConfState(voters=(1,)))
    s.append([Entry(t, i + 1) for i, t in enumerate(stable)])
    log = RaftLog(s, 1 << 20)
    if unstable:
        n = len(stable)
        log.append([Entry(t, n + i + 1) for i, t in enumerate(unstable)])
    return log


def test_last_index_and_terms_span_storage_and_unstable() -> None:
    log = make_log([1, 1, 2], (2, 3))
    assert (log.first_index(), log.last_index(), log.last_term()) == (1, 5, 3)
    assert [log.term(i) for i in range(0, 7)] == [0, 1, 1, 2, 2, 3, 0]
    assert [e.index for e in log.slice(2, 6)] == [2, 3, 4, 5]
    assert log.persisted == 3


def test_find_conflict() -> None:
    log = make_log([1, 2, 3])
    assert log.find_conflict([Entry(1, 1), Entry(2, 2)]) == 0
    assert log.find_conflict([Entry(2, 2), Entry(3, 3), Entry(4, 4)]) == 4
    assert log.find_conflict([Entry(1, 1), Entry(4, 2)]) == 2


def test_maybe_append_truncates_conflicts_but_never_committed_entries() -> None:
    log = make_log([1, 1, 1, 1])
    last, ok = log.maybe_append(1, 1, 2, (Entry(2, 2), Entry(2, 3)))
    assert ok and last == 3 and log.committed == 2
    assert [log.term(i) for i in range(1, 5)] == [1, 2, 2, 0]
    assert log.persisted == 1  # the overwritten durable entries no longer count
    assert log.maybe_append(3, 9, 3, ()) == (0, False)  # mismatch at (3, 9)
    with pytest.raises(RaftError):
        log.maybe_append(1, 1, 3, (Entry(3, 2),))  # would rewrite committed index 2


def test_find_conflict_by_term_skips_whole_terms() -> None:
    log = make_log([1, 1, 3, 3, 3, 5, 5])
    assert log.find_conflict_by_term(7, 4) == (5, 3)
    assert log.find_conflict_by_term(7, 2) == (2, 1)
    assert log.find_conflict_by_term(7, 5) == (7, 5)
    assert log.find_conflict_by_term(7, 0) == (0, 0)


def test_maybe_commit_only_current_term() -> None:
    log = make_log([1, 1, 2])
    assert not log.maybe_commit(3, 1)  # entry 3 is from term 2, not the leader's term 1
    assert log.maybe_commit(3, 2) and log.committed == 3
    assert not log.maybe_commit(2, 2)  # never goes back


def test_next_ents_and_applied() -> None:
    log = make_log([1, 1, 1, 1])
    log.commit_to(3)
    assert [e.index for e in log.next_ents()] == [1, 2, 3]
    log.applied_to(2)
    assert [e.index for e in log.next_ents()] == [3]
    with pytest.raises(RaftError):
        log.applied_to(4)
    with pytest.raises(RaftError):
        log.commit_to(5)


def test_stable_to_ignores_replaced_entries() -> None:
    log = make_log([1], (1, 1))
    log.append([Entry(2, 3)])  # replaces unstable index 3 (term 1)
    log.stable_to(3, 1)  # a stale report about the old entry 3
    assert log.unstable.offset == 2 and log.persisted == 1
    log.stable_to(3, 2)
    assert log.unstable.offset == 4 and log.persisted == 3


def test_restore_from_snapshot() -> None:
    log = make_log([1, 1])
    snap = Snapshot(b"", SnapshotMetadata(10, 3, ConfState(voters=(1,))))
    log.restore(snap)
    assert (log.committed, log.last_index(), log.last_term(), log.first_index()) == (10, 10, 3, 11)
    assert log.unstable.snapshot is snap
    log.stable_snap_to(10)
    assert log.unstable.snapshot is None and log.persisted == 10
