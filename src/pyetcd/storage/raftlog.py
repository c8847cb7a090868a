"""The raft log, hard state and membership snapshot, durable in a write-ahead log of their own.

The log lives apart from the key-value store (``<data-dir>/member/raft/``, where etcd keeps its
WAL in ``member/wal/``), so it never counts against --quota-backend-bytes and defragmentation
of the store does not carry it. It is an append-only file of records (storage/wal.py): a turn's
entries, hard state and compaction go into one batch, written with a single fdatasync, because
the turn answers nobody before its raft log is durable (a batch that only moves the commit
index needs none: ``WalBatch.must_sync``). Reads (by the raft core, on the event
loop) come from an in-memory mirror of the uncompacted log, rebuilt from the records at start;
the persist step adds records to a batch on the apply thread, and ``publish`` updates the mirror.

Each segment starts with a header restating the member id, the compaction point, the applied
membership and the hard state, so a segment whose entries are all compacted can be deleted.
A data dir written by earlier pyetcd versions (an LMDB environment here) is converted on open.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from pyetcd.raft import ConfState, Entry, EntryType, HardState, MemoryStorage, Snapshot, SnapshotMetadata

from .raftlog_lmdb import is_lmdb_log, read_lmdb_log, remove_lmdb_log
from .wal import SegmentedLog, WalError, frame, segments

# record kinds
_ENTRIES, _HARD_STATE, _SNAPSHOT, _CONF, _MEMBER_ID, _TRUNCATE = 1, 2, 3, 4, 5, 6
_ENTRY_HEAD = struct.Struct("<QQBI")  # index, term, type, data length
_U64 = struct.Struct("<Q")
_HARD_STATE_FMT = struct.Struct("<QQQ")
_SNAPSHOT_HEAD = struct.Struct("<QQB")  # index, term, 1 when it replaces the whole log (an install)


def _conf_json(cs: ConfState) -> bytes:
    return json.dumps({"voters": list(cs.voters), "learners": list(cs.learners)}).encode()


def _conf(raw: bytes) -> ConfState:
    d = json.loads(raw)
    return ConfState(voters=tuple(d["voters"]), learners=tuple(d["learners"]))


def encode_entries(entries: list[Entry]) -> bytes:
    parts = []
    for e in entries:
        parts.append(_ENTRY_HEAD.pack(e.index, e.term, 1 if e.type == EntryType.CONF_CHANGE else 0, len(e.data)))
        parts.append(e.data)
    return b"".join(parts)


def decode_entries(raw: bytes) -> list[Entry]:
    out, pos = [], 0
    while pos < len(raw):
        index, term, kind, size = _ENTRY_HEAD.unpack_from(raw, pos)
        pos += _ENTRY_HEAD.size
        etype = EntryType.CONF_CHANGE if kind == 1 else EntryType.NORMAL
        out.append(Entry(term=term, index=index, type=etype, data=raw[pos:pos + size]))
        pos += size
    return out


def _snapshot_record(meta: SnapshotMetadata, replace: bool) -> bytes:
    return frame(_SNAPSHOT, _SNAPSHOT_HEAD.pack(meta.index, meta.term, int(replace)) + _conf_json(meta.conf_state))


def _member_id_record(member_id: int) -> bytes:
    return frame(_MEMBER_ID, _U64.pack(member_id))


def _conf_record(cs: ConfState) -> bytes:
    return frame(_CONF, _conf_json(cs))


def _hard_state_record(hs: HardState) -> bytes:
    return frame(_HARD_STATE, _HARD_STATE_FMT.pack(hs.term, hs.vote, hs.commit))


@dataclass
class _State:
    """What the records say, applied in order: replayed at start, and the durable state the next
    segment's header restates."""

    member_id: int = 0
    snapshot: SnapshotMetadata = field(default_factory=lambda: SnapshotMetadata(0, 0, ConfState()))
    applied_conf: ConfState | None = None
    hard_state: HardState | None = None

    def header(self) -> bytes:
        parts = [_member_id_record(self.member_id), _snapshot_record(self.snapshot, False)]
        if self.applied_conf is not None:
            parts.append(_conf_record(self.applied_conf))
        if self.hard_state is not None:
            parts.append(_hard_state_record(self.hard_state))
        return b"".join(parts)


class _ReplayedEntries:
    """The entries records replayed in order: a later record replaces the suffix it overlaps."""

    def __init__(self) -> None:
        self.first = 1  # index of ents[0]
        self.ents: list[Entry] = []

    def add(self, new: list[Entry]) -> None:
        at = new[0].index
        if not self.ents or at > self.first + len(self.ents) or at < self.first:
            # empty, or a gap (the entries before were in deleted segments, all compacted: load checks)
            self.first, self.ents = at, list(new)
            return
        del self.ents[at - self.first:]
        self.ents.extend(new)

    def truncate_after(self, index: int) -> None:
        del self.ents[max(0, index + 1 - self.first):]

    def clear(self) -> None:
        self.ents = []

    def after(self, index: int) -> list[Entry]:
        return self.ents[max(0, index + 1 - self.first):]


class WalBatch:
    """One turn's raft-log writes: records gathered here, made durable together by ``commit``."""

    def __init__(self, log: RaftLog) -> None:
        self._log = log
        self.records: list[bytes] = []
        self.state = dataclasses.replace(log.durable)  # the durable state as it will be after this batch
        self.max_index = 0
        self.compacted_to = -1  # a snapshot record's index: older segments may go once durable
        self.commit_only = 0  # records that only move the hard state's commit index: see must_sync

    @property
    def must_sync(self) -> bool:
        """Whether the batch needs an fdatasync before the turn goes on: unless all it holds is a
        hard state whose term and vote are unchanged. Raft must not forget its entries, term or
        vote once it has spoken of them; a commit index it may (raft's MustSync in etcd, which
        skips the fsync the same way). On a cluster, the leader's turn that commits a lone client's
        put holds only that, as does each follower's turn that learns it: three members, put at
        1 client, +8 % puts/s without those fsyncs. A commit index cut off by a power loss is
        raised again from what the store applied (RaftLog.commit_at_least)."""
        return len(self.records) > self.commit_only

    def commit(self) -> None:
        self._log.commit(self)

    def abort(self) -> None:
        self.records.clear()


class RaftLog(MemoryStorage):
    """MemoryStorage as the raft core sees it, backed by a write-ahead log that survives restarts."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.wal = SegmentedLog(path)
        self.durable = _State()
        self._applied_conf: ConfState | None = None
        self.member_id = 0
        self.bytes_since_compaction = 0  # entry data written since the log was last compacted

    @staticmethod
    def exists(path: Path) -> bool:
        return bool(segments(path)) or is_lmdb_log(path)

    def begin_write(self) -> WalBatch:
        return WalBatch(self)

    def close(self) -> None:
        self.wal.close()

    @property
    def is_new(self) -> bool:
        """True when nothing was ever persisted: the member is bootstrapping."""
        return self.member_id == 0

    def _convert_lmdb_log(self) -> None:
        """A data dir of an earlier pyetcd: its LMDB raft log becomes the first WAL segment (made
        durable before the LMDB files go; a crash between the two just removes them next time)."""
        if not is_lmdb_log(self.path):
            return
        if not segments(self.path):
            old = read_lmdb_log(self.path)
            state = _State(old.member_id, old.snapshot, old.applied_conf, old.hard_state)
            records = state.header()
            if old.entries:
                records += frame(_ENTRIES, encode_entries(old.entries))
            converted = SegmentedLog(self.path)
            converted.start_segment(records)
            converted.close()
        remove_lmdb_log(self.path)

    def load(self) -> None:
        self._convert_lmdb_log()
        state, ents = _State(), _ReplayedEntries()
        for seq, kind, payload in self.wal.read():
            if kind == _ENTRIES:
                new = decode_entries(payload)
                if new:
                    ents.add(new)
                    self.wal.max_index[seq] = max(self.wal.max_index[seq], new[-1].index)
            elif kind == _HARD_STATE:
                state.hard_state = HardState(*_HARD_STATE_FMT.unpack(payload))
            elif kind == _SNAPSHOT:
                index, term, replace = _SNAPSHOT_HEAD.unpack_from(payload)
                state.snapshot = SnapshotMetadata(index, term, _conf(payload[_SNAPSHOT_HEAD.size:]))
                if replace:
                    state.applied_conf = state.snapshot.conf_state
                    ents.clear()
            elif kind == _CONF:
                state.applied_conf = _conf(payload)
            elif kind == _MEMBER_ID:
                state.member_id = _U64.unpack(payload)[0]
            elif kind == _TRUNCATE:
                ents.truncate_after(_U64.unpack(payload)[0])
            else:
                raise WalError(f"{self.path}: unknown record kind {kind}")
        snap = state.snapshot
        after = ents.after(snap.index)
        if after and after[0].index != snap.index + 1:
            raise WalError(f"{self.path}: entries {snap.index + 1}..{after[0].index - 1} are missing after the "
                           "snapshot point: restore the member from a snapshot or remove it and add it again")
        self.durable = state
        self.member_id = state.member_id
        self._applied_conf = state.applied_conf
        self._snapshot = Snapshot(b"", snap)
        self._ents = [Entry(snap.term, snap.index), *after]
        if state.hard_state is not None:
            self.set_hard_state(state.hard_state)

    def commit_at_least(self, applied: int) -> None:
        """Raise the hard state's commit index to what the store applied, where it trails: a
        commit index alone is written without fdatasync (WalBatch.must_sync), so a power loss
        may take the last ones while the store kept their effect. What was applied was committed,
        and its entries are in the log: a turn syncs its entries before the store commits."""
        hs = self.hard_state
        if hs.commit < applied:
            self.set_hard_state(dataclasses.replace(hs, commit=applied))

    def reload(self) -> None:
        """Forget the in-memory mirror and read everything again (after an offline rewrite)."""
        MemoryStorage.__init__(self)
        self.wal.close()
        self.wal = SegmentedLog(self.path)
        self._applied_conf = None
        self.load()

    def commit(self, batch: WalBatch) -> None:
        """Make ``batch`` durable (one write and one fdatasync), starting a segment when needed."""
        if not batch.records:
            return
        records = b"".join(batch.records)
        if not self.wal.is_open or self.wal.needs_new_segment(len(records)):
            self.wal.start_segment(self.durable.header())
        self.wal.append(records, batch.max_index, sync=batch.must_sync)
        batch.records.clear()
        self.durable = batch.state
        if batch.compacted_to >= 0:
            self.wal.drop_segments_through(batch.compacted_to)

    def truncate_after(self, txn: WalBatch, index: int) -> None:
        """Drop stored entries after ``index`` (--force-new-cluster discards uncommitted ones)."""
        txn.records.append(frame(_TRUNCATE, _U64.pack(index)))

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The membership of the last applied conf change: entries up to the applied index are
        not handed to the core again after a restart, so their conf changes must be remembered."""
        hs, cs = super().initial_state()
        return hs, self._applied_conf or cs

    # -- the apply thread's side: add records to the turn's batch ----------------------------
    def persist_conf_state(self, txn: WalBatch, cs: ConfState) -> None:
        txn.records.append(_conf_record(cs))
        txn.state.applied_conf = cs
        self._applied_conf = cs

    def persist(self, txn: WalBatch, entries: list[Entry], hard_state: HardState | None,
                snapshot_meta: SnapshotMetadata | None = None) -> None:
        if snapshot_meta is not None:  # a snapshot from the leader replaces the whole log
            txn.records.append(_snapshot_record(snapshot_meta, True))
            txn.state.snapshot = snapshot_meta
            txn.compacted_to = max(txn.compacted_to, snapshot_meta.index)
            self.persist_conf_state(txn, snapshot_meta.conf_state)
        if entries:
            txn.records.append(frame(_ENTRIES, encode_entries(entries)))
            txn.max_index = max(txn.max_index, entries[-1].index)
            self.bytes_since_compaction += sum(len(e.data) for e in entries)
        if hard_state is not None:
            before = txn.state.hard_state
            if before is not None and (before.term, before.vote) == (hard_state.term, hard_state.vote):
                txn.commit_only += 1
            txn.records.append(_hard_state_record(hard_state))
            txn.state.hard_state = hard_state

    def persist_compaction(self, txn: WalBatch, index: int, term: int, conf_state: ConfState) -> None:
        """Drop stored entries up to ``index``, recorded as the snapshot point."""
        meta = SnapshotMetadata(index, term, conf_state)
        txn.records.append(_snapshot_record(meta, False))
        txn.state.snapshot = meta
        txn.compacted_to = max(txn.compacted_to, index)

    # -- the event loop's side: mirror what is now durable ----------------------------------
    def publish(self, entries: list[Entry], hard_state: HardState | None) -> None:
        if entries:
            self.append(entries)
        if hard_state is not None:
            self.set_hard_state(hard_state)

    def publish_snapshot(self, snap: Snapshot) -> None:
        """The mirror of ``persist`` with a snapshot: the log now starts after it."""
        self.apply_snapshot(Snapshot(b"", snap.metadata))
        self.bytes_since_compaction = 0

    def publish_compaction(self, index: int, conf_state: ConfState) -> None:
        self.create_snapshot(index, conf_state, b"")
        self.compact(index)
        self.bytes_since_compaction = 0

    def bootstrap(self, txn: WalBatch, member_id: int, conf_state: ConfState) -> None:
        """A new cluster (membership at index 0, so the core knows its voters) or a member
        joining one (no voters: it learns them from the leader's snapshot)."""
        meta = SnapshotMetadata(0, 0, conf_state)
        txn.records.append(_member_id_record(member_id))
        txn.records.append(_snapshot_record(meta, False))
        txn.state.member_id, txn.state.snapshot = member_id, meta
        self._snapshot = Snapshot(b"", meta)
        self.member_id = member_id
