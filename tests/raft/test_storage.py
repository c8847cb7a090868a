"""MemoryStorage: the reference implementation of the Storage protocol."""

from __future__ import annotations

import pytest

from pyetcd.raft import (
    CompactedError,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    Snapshot,
    SnapshotMetadata,
    SnapshotOutOfDateError,
    UnavailableError,
)


def storage_with(terms: list[int]) -> MemoryStorage:
    s = MemoryStorage(ConfState(voters=(1, 2, 3)))
    s.append([Entry(t, i + 1, data=b"d" * 10) for i, t in enumerate(terms)])
    return s


def test_bootstrap_conf_state_and_empty_log() -> None:
    s = MemoryStorage(ConfState(voters=(1, 2, 3)))
    hs, cs = s.initial_state()
    assert hs == HardState() and cs.voters == (1, 2, 3)
    assert (s.first_index(), s.last_index(), s.term(0)) == (1, 0, 0)
    assert s.snapshot().metadata.index == 0


def test_term_and_entries_bounds() -> None:
    s = storage_with([1, 1, 2, 3])
    assert [s.term(i) for i in range(0, 5)] == [0, 1, 1, 2, 3]
    assert [e.index for e in s.entries(2, 5)] == [2, 3, 4]
    with pytest.raises(UnavailableError):
        s.term(5)
    with pytest.raises(UnavailableError):
        s.entries(2, 6)


def test_entries_max_size_keeps_at_least_one() -> None:
    s = storage_with([1, 1, 1, 1])
    assert len(s.entries(1, 5, max_size=0)) == 1
    assert len(s.entries(1, 5, max_size=2 * (10 + 16))) == 2
    assert len(s.entries(1, 5, max_size=None)) == 4


def test_append_truncates_conflicting_suffix() -> None:
    s = storage_with([1, 1, 1])
    s.append([Entry(2, 2), Entry(2, 3), Entry(2, 4)])
    assert [s.term(i) for i in range(1, 5)] == [1, 2, 2, 2]
    with pytest.raises(UnavailableError):
        s.append([Entry(3, 7)])  # would leave a gap


def test_compact_and_snapshot() -> None:
    s = storage_with([1, 1, 2, 2, 3])
    snap = s.create_snapshot(3, ConfState(voters=(1, 2)), b"state")
    assert (snap.metadata.index, snap.metadata.term, snap.data) == (3, 2, b"state")
    s.compact(3)
    assert (s.first_index(), s.last_index(), s.term(3)) == (4, 5, 2)
    with pytest.raises(CompactedError):
        s.term(2)
    with pytest.raises(CompactedError):
        s.entries(3, 5)
    with pytest.raises(CompactedError):
        s.compact(3)
    with pytest.raises(SnapshotOutOfDateError):
        s.create_snapshot(2, None, b"")
    assert s.initial_state()[1].voters == (1, 2)
    # Appending entries that are partly compacted keeps only the new part.
    s.append([Entry(2, 3), Entry(2, 4), Entry(4, 5), Entry(4, 6)])
    assert [s.term(i) for i in range(3, 7)] == [2, 2, 4, 4]


def test_apply_snapshot_replaces_log() -> None:
    s = storage_with([1, 1, 1])
    snap = Snapshot(b"x", SnapshotMetadata(10, 4, ConfState(voters=(1,))))
    s.apply_snapshot(snap)
    assert (s.first_index(), s.last_index(), s.term(10)) == (11, 10, 4)
    with pytest.raises(SnapshotOutOfDateError):
        s.apply_snapshot(snap)
