"""The raft log, hard state and membership snapshot, durable in LMDB.

Reads (by the raft core, on the event loop) come from an in-memory mirror of the uncompacted
log; the persist step writes the same entries into the batch's LMDB transaction on the apply
thread, and ``publish`` updates the mirror once that transaction is durable.
"""

from __future__ import annotations

import json
import struct

import lmdb

from pyetcd.raft import ConfState, Entry, EntryType, HardState, MemoryStorage, Snapshot, SnapshotMetadata

from .backend import RAFT_LOG, RAFT_STATE, Backend

_INDEX = struct.Struct(">Q")
_ENTRY_HEAD = struct.Struct(">QB")
_HARD_STATE = struct.Struct(">QQQ")
_HS_KEY = b"hardstate"
_SNAP_KEY = b"snapshot"
_CONF_KEY = b"confstate"  # membership as of the last applied conf change
_LOCAL_ID_KEY = b"localid"  # this member's id when it was not derived from the flags (etcd's WAL metadata)


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

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        self._applied_conf: ConfState | None = None
        self.bytes_since_compaction = 0  # entry data written since the log was last compacted
        self.local_id = 0  # this member's stored id (an imported etcd member's), 0 if none

    @property
    def log_db(self) -> lmdb._Database:
        return self.backend.db(RAFT_LOG)

    @property
    def state_db(self) -> lmdb._Database:
        return self.backend.db(RAFT_STATE)

    @property
    def is_new(self) -> bool:
        """True when nothing was ever persisted: the member is bootstrapping."""
        return self.snapshot().metadata.conf_state.voters == () and self.last_index() == 0

    def load(self) -> None:
        with self.backend.read() as txn:
            raw = txn.get(_SNAP_KEY, db=self.state_db)
            if raw is not None:
                meta = _decode_snapshot_meta(bytes(raw))
                self._snapshot = Snapshot(b"", meta)
                self._ents = [Entry(meta.term, meta.index)]
            raw = txn.get(_CONF_KEY, db=self.state_db)
            if raw is not None:
                self._applied_conf = _conf_state(json.loads(bytes(raw)))
            raw = txn.get(_LOCAL_ID_KEY, db=self.state_db)
            if raw is not None:
                self.local_id = _INDEX.unpack(bytes(raw))[0]
            raw = txn.get(_HS_KEY, db=self.state_db)
            if raw is not None:
                self.set_hard_state(HardState(*_HARD_STATE.unpack(bytes(raw))))
            cursor = txn.cursor(db=self.log_db)
            if cursor.set_range(_INDEX.pack(self.first_index())):
                ents = [decode_entry(_INDEX.unpack(bytes(k))[0], bytes(v)) for k, v in cursor.iternext()]
                self.append(ents)

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The membership of the last applied conf change: entries up to the applied index are
        not handed to the core again after a restart, so their conf changes must be remembered."""
        hs, cs = super().initial_state()
        return hs, self._applied_conf or cs

    # -- the apply thread's side: write into the batch transaction ---------------------------
    def persist_conf_state(self, txn: lmdb.Transaction, cs: ConfState) -> None:
        txn.put(_CONF_KEY, json.dumps(_conf_state_dict(cs)).encode(), db=self.state_db)
        self._applied_conf = cs

    def persist_local_id(self, txn: lmdb.Transaction, node_id: int) -> None:
        """Keep this member's id, as etcd keeps it in its WAL: it outlives the flags it came from."""
        txn.put(_LOCAL_ID_KEY, _INDEX.pack(node_id), db=self.state_db)
        self.local_id = node_id

    def persist(self, txn: lmdb.Transaction, entries: list[Entry], hard_state: HardState | None,
                snapshot_meta: SnapshotMetadata | None = None) -> None:
        if snapshot_meta is not None:
            txn.put(_SNAP_KEY, _encode_snapshot_meta(snapshot_meta), db=self.state_db)
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

    def publish_compaction(self, index: int, conf_state: ConfState) -> None:
        self.create_snapshot(index, conf_state, b"")
        self.compact(index)
        self.bytes_since_compaction = 0

    def bootstrap(self, txn: lmdb.Transaction, conf_state: ConfState) -> None:
        """A new cluster: membership at index 0, so the core knows its voters."""
        meta = SnapshotMetadata(0, 0, conf_state)
        txn.put(_SNAP_KEY, _encode_snapshot_meta(meta), db=self.state_db)
        self._snapshot = Snapshot(b"", meta)
