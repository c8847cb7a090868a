"""The raft log, hard state and membership snapshot, durable in an LMDB environment of their own.

The log lives apart from the key-value store (``<data-dir>/member/raft/``, where etcd keeps its
WAL in ``member/wal/``), so it never counts against --quota-backend-bytes and defragmentation
of the store does not carry it. Reads (by the raft core, on the event loop) come from an
in-memory mirror of the uncompacted log; the persist step writes the same entries into a write
transaction of this environment on the apply thread, and ``publish`` updates the mirror once
that transaction is durable.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lmdb

from pyetcd.raft import ConfState, Entry, EntryType, HardState, MemoryStorage, Snapshot, SnapshotMetadata

RAFT_LOG = b"raftlog"  # raft index (8 bytes big-endian) -> encoded entry
RAFT_STATE = b"raftstate"  # hard state, conf state, snapshot metadata, this member's id
# Address space, not disk: the log is compacted by count and size (server.node_loop).
_MAP_SIZE = 8 * 1024 * 1024 * 1024

_INDEX = struct.Struct(">Q")
_ENTRY_HEAD = struct.Struct(">QB")
_HARD_STATE = struct.Struct(">QQQ")
_HS_KEY = b"hardstate"
_SNAP_KEY = b"snapshot"
_CONF_KEY = b"confstate"  # membership as of the last applied conf change
_ID_KEY = b"member_id"  # this member's id, fixed at bootstrap or join (etcd keeps it in the WAL)


def encode_entry(e: Entry) -> bytes:
    return _ENTRY_HEAD.pack(e.term, 1 if e.type == EntryType.CONF_CHANGE else 0) + e.data


def decode_entry(index: int, raw: bytes) -> Entry:
    term, kind = _ENTRY_HEAD.unpack_from(raw)
    etype = EntryType.CONF_CHANGE if kind == 1 else EntryType.NORMAL
    return Entry(term=term, index=index, type=etype, data=bytes(raw[_ENTRY_HEAD.size:]))


def _conf_state_dict(cs: ConfState) -> dict[str, list[int]]:
    return {"voters": list(cs.voters), "learners": list(cs.learners)}


def _conf_state(d: dict[str, list[int]]) -> ConfState:
    return ConfState(voters=tuple(d["voters"]), learners=tuple(d["learners"]))


def _encode_snapshot_meta(meta: SnapshotMetadata) -> bytes:
    return json.dumps({"index": meta.index, "term": meta.term, **_conf_state_dict(meta.conf_state)}).encode()


def _decode_snapshot_meta(raw: bytes) -> SnapshotMetadata:
    d = json.loads(raw)
    return SnapshotMetadata(d["index"], d["term"], _conf_state(d))


class RaftLog(MemoryStorage):
    """MemoryStorage as the raft core sees it, backed by LMDB buckets that survive restarts."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(path), map_size=_MAP_SIZE, max_dbs=4, subdir=True, sync=True,
                             metasync=True, readahead=False)
        self.log_db = self.env.open_db(RAFT_LOG)
        self.state_db = self.env.open_db(RAFT_STATE)
        self._applied_conf: ConfState | None = None
        self.member_id = 0
        self.bytes_since_compaction = 0  # entry data written since the log was last compacted

    @staticmethod
    def exists(path: Path) -> bool:
        return (path / "data.mdb").exists()

    def begin_write(self) -> lmdb.Transaction:
        return self.env.begin(write=True)

    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction]:
        txn = self.env.begin(write=False, buffers=False)
        try:
            yield txn
        finally:
            txn.abort()

    def close(self) -> None:
        self.env.close()

    @property
    def is_new(self) -> bool:
        """True when nothing was ever persisted: the member is bootstrapping."""
        return self.member_id == 0

    def load(self) -> None:
        with self.read() as txn:
            raw = txn.get(_ID_KEY, db=self.state_db)
            self.member_id = _INDEX.unpack(bytes(raw))[0] if raw is not None else 0
            raw = txn.get(_SNAP_KEY, db=self.state_db)
            if raw is not None:
                meta = _decode_snapshot_meta(bytes(raw))
                self._snapshot = Snapshot(b"", meta)
                self._ents = [Entry(meta.term, meta.index)]
            raw = txn.get(_CONF_KEY, db=self.state_db)
            if raw is not None:
                self._applied_conf = _conf_state(json.loads(bytes(raw)))
            raw = txn.get(_HS_KEY, db=self.state_db)
            if raw is not None:
                self.set_hard_state(HardState(*_HARD_STATE.unpack(bytes(raw))))
            cursor = txn.cursor(db=self.log_db)
            if cursor.set_range(_INDEX.pack(self.first_index())):
                ents = [decode_entry(_INDEX.unpack(bytes(k))[0], bytes(v)) for k, v in cursor.iternext()]
                self.append(ents)

    def reload(self) -> None:
        """Forget the in-memory mirror and read everything again (after an offline rewrite)."""
        MemoryStorage.__init__(self)
        self._applied_conf = None
        self.load()

    def truncate_after(self, txn: lmdb.Transaction, index: int) -> None:
        """Drop stored entries after ``index`` (--force-new-cluster discards uncommitted ones)."""
        cursor = txn.cursor(db=self.log_db)
        if cursor.set_range(_INDEX.pack(index + 1)):
            while cursor.delete():
                pass

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The membership of the last applied conf change: entries up to the applied index are
        not handed to the core again after a restart, so their conf changes must be remembered."""
        hs, cs = super().initial_state()
        return hs, self._applied_conf or cs

    # -- the apply thread's side: write into the batch transaction ---------------------------
    def persist_conf_state(self, txn: lmdb.Transaction, cs: ConfState) -> None:
        txn.put(_CONF_KEY, json.dumps(_conf_state_dict(cs)).encode(), db=self.state_db)
        self._applied_conf = cs

    def persist(self, txn: lmdb.Transaction, entries: list[Entry], hard_state: HardState | None,
                snapshot_meta: SnapshotMetadata | None = None) -> None:
        if snapshot_meta is not None:  # a snapshot from the leader replaces the whole log
            txn.put(_SNAP_KEY, _encode_snapshot_meta(snapshot_meta), db=self.state_db)
            self.persist_conf_state(txn, snapshot_meta.conf_state)
            txn.drop(self.log_db, delete=False)
        if entries:
            # a conflicting suffix is replaced: drop stored entries from the first new index on
            cursor = txn.cursor(db=self.log_db)
            if cursor.set_range(_INDEX.pack(entries[0].index)):
                while cursor.delete():
                    pass
            for e in entries:
                txn.put(_INDEX.pack(e.index), encode_entry(e), db=self.log_db, append=True)
                self.bytes_since_compaction += len(e.data)
        if hard_state is not None:
            txn.put(_HS_KEY, _HARD_STATE.pack(hard_state.term, hard_state.vote, hard_state.commit),
                    db=self.state_db)

    def persist_compaction(self, txn: lmdb.Transaction, index: int, term: int, conf_state: ConfState) -> None:
        """Drop stored entries up to ``index``, recorded as the snapshot point."""
        txn.put(_SNAP_KEY, _encode_snapshot_meta(SnapshotMetadata(index, term, conf_state)), db=self.state_db)
        cursor = txn.cursor(db=self.log_db)
        positioned = cursor.first()
        while positioned:
            raw = bytes(cursor.key())
            if not raw or _INDEX.unpack(raw)[0] > index:
                break
            positioned = cursor.delete()  # moves to the next row

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

    def bootstrap(self, txn: lmdb.Transaction, member_id: int, conf_state: ConfState) -> None:
        """A new cluster (membership at index 0, so the core knows its voters) or a member
        joining one (no voters: it learns them from the leader's snapshot)."""
        meta = SnapshotMetadata(0, 0, conf_state)
        txn.put(_SNAP_KEY, _encode_snapshot_meta(meta), db=self.state_db)
        txn.put(_ID_KEY, _INDEX.pack(member_id), db=self.state_db)
        self._snapshot = Snapshot(b"", meta)
        self.member_id = member_id
