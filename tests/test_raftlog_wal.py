"""storage/raftlog.py over storage/wal.py: what a turn persists is what a restart reads back.

Real files in a temp dir: commits, a conflicting suffix, compaction with segment deletion, a
leader's snapshot, --force-new-cluster's truncation, a crash's torn tail (and that no fragment
of it can come back later), damage before the last segment, and a data dir of the LMDB era.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import lmdb
import pytest

from pyetcd.raft import ConfState, Entry, EntryType, HardState, SnapshotMetadata
from pyetcd.storage import wal
from pyetcd.storage.raftlog import RaftLog
from pyetcd.storage.wal import WalError, segments

VOTERS = ConfState(voters=(1, 2, 3))


def _entries(lo: int, hi: int, term: int = 1, size: int = 20) -> list[Entry]:
    return [Entry(term=term, index=i, data=f"e{i}-t{term}".encode().ljust(size, b".")) for i in range(lo, hi + 1)]


def _new_log(path: Path, member_id: int = 0x42) -> RaftLog:
    log = RaftLog(path)
    log.load()
    txn = log.begin_write()
    log.bootstrap(txn, member_id, VOTERS)
    txn.commit()
    return log


def _persist(log: RaftLog, entries: list[Entry], hs: HardState | None = None) -> None:
    txn = log.begin_write()
    log.persist(txn, entries, hs)
    txn.commit()
    log.publish(entries, hs)


def _reopen(log: RaftLog) -> RaftLog:
    log.close()
    again = RaftLog(log.path)
    again.load()
    return again


def _indexes_terms(log: RaftLog) -> list[tuple[int, int]]:
    return [(e.index, e.term) for e in log.entries(log.first_index(), log.last_index() + 1)]


def test_commits_read_back_after_a_restart(tmp_path: Path) -> None:
    log = _new_log(tmp_path)
    _persist(log, _entries(1, 5), HardState(term=1, vote=0x42, commit=3))
    _persist(log, _entries(6, 9), HardState(term=1, vote=0x42, commit=9))
    txn = log.begin_write()
    log.persist_conf_state(txn, ConfState(voters=(1, 2), learners=(3,)))
    txn.commit()
    again = _reopen(log)
    assert again.member_id == 0x42 and not again.is_new
    assert [e.data for e in again.entries(1, 10)] == [e.data for e in _entries(1, 9)]
    assert again.hard_state == HardState(term=1, vote=0x42, commit=9)
    assert again.initial_state()[1] == ConfState(voters=(1, 2), learners=(3,))
    assert RaftLog.exists(tmp_path)


def test_an_aborted_batch_leaves_nothing(tmp_path: Path) -> None:
    log = _new_log(tmp_path)
    _persist(log, _entries(1, 3))
    txn = log.begin_write()
    log.persist(txn, _entries(4, 6), HardState(term=2, vote=1, commit=6))
    txn.abort()
    again = _reopen(log)
    assert again.last_index() == 3 and again.hard_state == HardState()


def test_a_conflicting_suffix_replaces_the_old_one(tmp_path: Path) -> None:
    log = _new_log(tmp_path)
    _persist(log, _entries(1, 10, term=1))
    _persist(log, _entries(6, 7, term=2))  # a new leader overwrote 6.. with a shorter log
    again = _reopen(log)
    assert _indexes_terms(again) == [(i, 1) for i in range(1, 6)] + [(6, 2), (7, 2)]


def _spy_fdatasync(monkeypatch: pytest.MonkeyPatch, log_dir: Path) -> list[tuple[int, int]]:
    """Every fdatasync from now on: its fd, and how many segments ``log_dir`` held then."""
    calls: list[tuple[int, int]] = []
    real = os.fdatasync
    monkeypatch.setattr(wal.os, "fdatasync", lambda fd: (calls.append((fd, len(segments(log_dir)))), real(fd))[1])
    return calls


def test_one_fdatasync_per_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _new_log(tmp_path)
    calls = _spy_fdatasync(monkeypatch, tmp_path)
    _persist(log, _entries(1, 50), HardState(term=1, vote=1, commit=50))
    assert len(calls) == 1


def test_a_batch_that_only_moves_the_commit_index_is_written_without_fdatasync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WalBatch.must_sync (etcd's MustSync): entries, a new term or a new vote are synced at once;
    a commit index alone is written and becomes durable with the next synced batch."""
    log = _new_log(tmp_path)
    calls = _spy_fdatasync(monkeypatch, tmp_path)
    _persist(log, _entries(1, 5), HardState(term=1, vote=0x42, commit=3))
    assert len(calls) == 1
    _persist(log, [], HardState(term=1, vote=0x42, commit=5))
    assert len(calls) == 1
    _persist(log, [], HardState(term=2, vote=0x42, commit=5))  # a new term
    _persist(log, [], HardState(term=2, vote=7, commit=5))  # a new vote
    assert len(calls) == 3
    _persist(log, [], HardState(term=2, vote=7, commit=5))
    again = _reopen(log)  # closing syncs what was written without it
    assert len(calls) == 4
    assert again.hard_state == HardState(term=2, vote=7, commit=5)


def test_a_new_segment_first_syncs_the_unsynced_end_of_the_last(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the last segment may end in records a power loss cut off (anywhere else is
    corruption, refused at start): the segment an unsynced commit index went to is synced
    before the next one begins."""
    monkeypatch.setattr(wal, "SEGMENT_BYTES", 4096)
    log = _new_log(tmp_path)
    synced = _spy_fdatasync(monkeypatch, tmp_path)
    _persist(log, _entries(1, 10, size=60), HardState(term=1, vote=0x42, commit=1))
    _persist(log, [], HardState(term=1, vote=0x42, commit=10))
    first_fd, before = synced[0]
    while len(segments(tmp_path)) == before:
        _persist(log, _entries(11, 60, size=60), HardState(term=1, vote=0x42, commit=10))
    # its entries, then its unsynced end, while it was still the last segment
    assert [n for fd, n in synced if fd == first_fd] == [before, before]


def test_a_commit_index_trailing_what_the_store_applied_is_raised(tmp_path: Path) -> None:
    """After a power loss took the last unsynced commit index, the store may have applied more:
    RaftLog.commit_at_least raises it (what was applied was committed); it never lowers it."""
    log = _new_log(tmp_path)
    _persist(log, _entries(1, 9), HardState(term=1, vote=0x42, commit=4))
    log.commit_at_least(9)
    assert log.hard_state == HardState(term=1, vote=0x42, commit=9)
    log.commit_at_least(6)
    assert log.hard_state.commit == 9


def test_compaction_deletes_old_segments_and_the_rest_reads_back(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal, "SEGMENT_BYTES", 4096)  # a segment holds a few dozen small entries
    log = _new_log(tmp_path)
    for lo in range(1, 400, 10):
        _persist(log, _entries(lo, lo + 9, size=60), HardState(term=1, vote=0x42, commit=lo + 9))
    assert len(segments(tmp_path)) > 8
    txn = log.begin_write()
    log.persist_compaction(txn, 300, 1, VOTERS)
    txn.commit()
    log.publish_compaction(300, VOTERS)
    kept = segments(tmp_path)
    assert 1 < len(kept) < 5, "segments holding only compacted entries should be gone"
    _persist(log, _entries(400, 405, size=60), HardState(term=1, vote=0x42, commit=405))
    again = _reopen(log)
    assert again.first_index() == 301 and again.last_index() == 405
    assert again.snapshot().metadata.index == 300 and again.term(300) == 1
    assert [e.data for e in again.entries(301, 406)] == [e.data for e in _entries(301, 405, size=60)]
    assert again.hard_state.commit == 405 and again.member_id == 0x42
    assert again.initial_state()[1] == VOTERS


def test_a_leaders_snapshot_replaces_the_whole_log(tmp_path: Path) -> None:
    log = _new_log(tmp_path)
    _persist(log, _entries(1, 20, term=1))
    meta = SnapshotMetadata(100, 3, ConfState(voters=(1, 2, 3, 4)))
    txn = log.begin_write()
    log.persist(txn, [], None, meta)
    log.persist(txn, _entries(101, 102, term=3), HardState(term=3, vote=2, commit=101))
    txn.commit()
    again = _reopen(log)
    assert again.snapshot().metadata.index == 100
    assert _indexes_terms(again) == [(101, 3), (102, 3)]
    assert again.initial_state()[1] == ConfState(voters=(1, 2, 3, 4))


def test_truncate_after_drops_the_uncommitted_tail(tmp_path: Path) -> None:
    log = _new_log(tmp_path)
    _persist(log, _entries(1, 10), HardState(term=1, vote=1, commit=6))
    txn = log.begin_write()
    log.truncate_after(txn, 6)
    txn.commit()
    log.reload()
    assert log.last_index() == 6
    assert _reopen(log).last_index() == 6


def _segment_bytes(path: Path) -> tuple[Path, bytearray]:
    seg = segments(path)[-1][1]
    return seg, bytearray(seg.read_bytes())


def _record_offsets(buf: bytearray) -> list[int]:
    offsets, pos = [], 0
    while (length := struct.unpack_from("<I", buf, pos)[0]) != 0:
        offsets.append(pos)
        pos += 8 + length
    return offsets


def test_a_torn_last_record_ends_the_log_and_no_fragment_of_it_returns(tmp_path: Path) -> None:
    log = _new_log(tmp_path)
    _persist(log, _entries(1, 3))
    _persist(log, _entries(4, 4))  # the record a crash will tear
    _persist(log, _entries(5, 5))  # written after it (as a multi-record write may land): must not return
    log.close()
    seg, buf = _segment_bytes(tmp_path)
    offsets = _record_offsets(buf)
    torn = offsets[-2]
    buf[torn + 12] ^= 0xFF  # the torn record's payload no longer matches its CRC
    seg.write_bytes(bytes(buf))

    log = RaftLog(tmp_path)
    log.load()
    assert log.last_index() == 3
    _persist(log, _entries(4, 4, term=2))  # as long as the torn one: the next record would sit where 5 was
    again = _reopen(log)
    assert _indexes_terms(again) == [(1, 1), (2, 1), (3, 1), (4, 2)]


def test_damage_before_the_last_segment_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal, "SEGMENT_BYTES", 4096)
    log = _new_log(tmp_path)
    for lo in range(1, 200, 10):
        _persist(log, _entries(lo, lo + 9))
    log.close()
    first = segments(tmp_path)[0][1]
    buf = bytearray(first.read_bytes())
    buf[_record_offsets(buf)[-1] + 10] ^= 0xFF
    first.write_bytes(bytes(buf))
    with pytest.raises(WalError, match="damaged record"):
        RaftLog(tmp_path).load()


def _write_lmdb_era_log(path: Path) -> None:
    """The raft log as pyetcd wrote it before the WAL (storage/raftlog_lmdb.py's layout)."""
    env = lmdb.open(str(path), map_size=1 << 26, max_dbs=4, subdir=True)
    log_db, state_db = env.open_db(b"raftlog"), env.open_db(b"raftstate")
    with env.begin(write=True) as txn:
        txn.put(b"member_id", struct.pack(">Q", 0x77), db=state_db)
        txn.put(b"snapshot", json.dumps({"index": 5, "term": 2, "voters": [0x77], "learners": []}).encode(),
                db=state_db)
        txn.put(b"confstate", json.dumps({"voters": [0x77], "learners": []}).encode(), db=state_db)
        txn.put(b"hardstate", struct.pack(">QQQ", 2, 0x77, 8), db=state_db)
        for i in range(3, 9):  # 3..5 are compacted: not read back
            txn.put(struct.pack(">Q", i), struct.pack(">QB", 2, 1 if i == 7 else 0) + f"v{i}".encode(), db=log_db)
    env.close()


def test_a_data_dir_of_the_lmdb_era_is_converted(tmp_path: Path) -> None:
    _write_lmdb_era_log(tmp_path)
    assert RaftLog.exists(tmp_path)
    log = RaftLog(tmp_path)
    log.load()
    assert not (tmp_path / "data.mdb").exists() and len(segments(tmp_path)) == 1
    assert log.member_id == 0x77 and log.hard_state == HardState(term=2, vote=0x77, commit=8)
    assert log.snapshot().metadata.index == 5
    assert [(e.index, e.data, e.type) for e in log.entries(6, 9)] == [
        (6, b"v6", EntryType.NORMAL), (7, b"v7", EntryType.CONF_CHANGE), (8, b"v8", EntryType.NORMAL)]
    _persist(log, [Entry(term=2, index=9, data=b"v9")])
    assert _reopen(log).last_index() == 9
