"""The MVCC store: reads at any revision since the last compaction, writes batched per apply.

Values are kept as serialized ``mvccpb.KeyValue`` bytes, etcd's own layout, so a range read
copies bytes from LMDB into the response without building protobuf objects.

Threading: readers (the event loop) use ``KVStore.range`` on the shared index and a fresh LMDB
read transaction. The apply thread writes through a ``StoreWriter`` whose index changes stay in
a copy-on-write ``BatchIndex`` until the batch's turn has committed; ``KVStore.publish`` then
makes them visible, on the readers' thread, all at once. (A lone client's turns may leave the
LMDB transaction open past that point: every read transaction then commits it first, through
``Backend.read``, so the index never shows what LMDB does not.)
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import crc32c
import lmdb

from pyetcd import errors, failpoints
from pyetcd.api import kv_pb2
from pyetcd.storage.backend import KEY, META, Backend
from pyetcd.storage.progress import Progress

from .index import BatchIndex, PackedKey, TreeIndex, pack_single
from .revision import REV_BYTES_LEN, Revision, decode_revision, encode_revision, main_revision_prefix

PUT = kv_pb2.Event.PUT
DELETE = kv_pb2.Event.DELETE

_META_CURRENT_REV = b"currentRev"
_META_COMPACT_REV = b"finishedCompactRev"
_I64 = struct.Struct(">q")
_REV_MAIN_SUB = struct.Struct(">Q1xQ")  # a key-bucket key's revision; a tombstone's key is longer
# A first start on a large data dir rebuilds the key index from every stored revision: log how
# far it got (checked every _PROGRESS_EVERY rows, logged every few seconds) when there are many.
_PROGRESS_MIN = 100_000
_PROGRESS_EVERY = 10_000
_PROGRESS_INTERVAL = 5.0  # seconds between two progress lines
# A protobuf message reused for many parses keeps every parse's memory in its arena until it is
# freed (upb): a restart's scan of a million revisions held ~250 MB that way. A fresh message
# every so often bounds it.
_FRESH_MESSAGE_EVERY = 1000
log = logging.getLogger("pyetcd.mvcc")


@dataclass
class RangeResult:
    """Serialized KeyValues in key order, the count of keys in range, the revision read at."""

    kvs: list[bytes]
    count: int
    rev: int


@dataclass
class Change:
    """One event produced by a write: what watchers receive."""

    type: int
    key: bytes
    rev: int
    kv: bytes  # serialized KeyValue (for a delete: key and mod_revision only)
    lease: int = 0  # the lease the key is attached to after the change
    prev_lease: int = 0  # the lease it was attached to before


class _IndexView(Protocol):
    def revision_at(self, key: bytes, at_rev: int) -> Revision | None: ...

    def keep_for_compaction(self, key: bytes, at_rev: int, keep: set[Revision]) -> None: ...

    def revisions_in_range(self, key: bytes, end: bytes | None, at_rev: int) -> list[Revision]: ...

    def keys_in_range(self, key: bytes, end: bytes | None) -> Iterator[bytes]: ...


def revisions_to_keep(index: _IndexView, at_rev: int) -> set[Revision]:
    """The revisions at or below ``at_rev`` that a compaction at ``at_rev`` keeps (etcd's Keep)."""
    keep: set[Revision] = set()
    for key in index.keys_in_range(b"", b""):
        index.keep_for_compaction(key, at_rev, keep)
    return keep


def normalize_end(range_end: bytes) -> bytes | None:
    """etcd's range_end convention: empty = single key, ``\\0`` = every key >= key."""
    if not range_end:
        return None
    if range_end == b"\x00":
        return b""
    return range_end


def _read_range(index: _IndexView, txn: lmdb.Transaction, db: lmdb._Database, key: bytes, end: bytes | None,
                at_rev: int, limit: int, count_only: bool) -> tuple[list[bytes], int]:
    revs = index.revisions_in_range(key, end, at_rev)
    if count_only or not revs:
        return [], len(revs)
    wanted = revs if limit <= 0 else revs[:limit]
    kvs: list[bytes] = []
    for rev in wanted:
        value = txn.get(encode_revision(rev.main, rev.sub), db=db)
        if value is None:  # removed by a compaction that raced this read
            raise errors.ErrCompacted()
        kvs.append(bytes(value))
    return kvs, len(revs)


def _scan_index(cursor: lmdb.Cursor, progress: Progress | None) -> tuple[dict[bytes, bytes], int]:
    """Every key's packed index from one scan of the key bucket (in revision order), and the last
    revision seen. Keys with one revision are packed straight away; the few with history are
    unpacked while the scan runs and packed at the end."""
    packed: dict[bytes, bytes] = {}
    history: dict[bytes, PackedKey] = {}
    kv = kv_pb2.KeyValue()
    parse = kv.ParseFromString
    unpack_rev = _REV_MAIN_SUB.unpack_from
    last = 0
    n = 0
    for raw_rev, value in cursor.iternext():
        n += 1
        if n % _FRESH_MESSAGE_EVERY == 0:
            kv = kv_pb2.KeyValue()
            parse = kv.ParseFromString
        if progress is not None and n % _PROGRESS_EVERY == 0:
            progress.update(n)
        main, sub = unpack_rev(raw_rev)
        last = main
        parse(value)  # type: ignore[arg-type]  # iternext yields bytes: the cursor has no buffers=True
        key = kv.key
        ki = history.get(key)
        tombstone = len(raw_rev) > REV_BYTES_LEN
        if ki is None:
            raw = packed.get(key)
            if raw is None:
                if not tombstone:
                    packed[key] = pack_single(kv.lease, kv.create_revision, kv.version, main, sub)
                continue
            ki = history[key] = PackedKey(key, raw)
        if tombstone:
            if ki.alive:
                ki.tombstone(Revision(main, sub))
        else:
            ki.put(Revision(main, sub), kv.create_revision, kv.version)
            ki.lease = kv.lease
    for key, ki in history.items():
        packed[key] = ki.pack()
    return packed, last


class KVStore:
    """The key space: the shared index, the current and compacted revisions, and reads."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.index = TreeIndex()
        self.current_rev = 1  # an empty etcd store is at revision 1
        self.compact_rev = -1
        self._load()

    def reload(self) -> None:
        """Rebuild the index from the backend (its file was replaced by a leader's snapshot)."""
        self.index = TreeIndex()
        self.current_rev = 1
        self.compact_rev = -1
        self._load()

    def _load(self) -> None:
        with self.backend.read() as txn:
            raw = txn.get(_META_COMPACT_REV, db=self.meta)
            if raw is not None:
                self.compact_rev = _I64.unpack(raw)[0]
            raw = txn.get(_META_CURRENT_REV, db=self.meta)
            if raw is not None:
                self.current_rev = max(self.current_rev, _I64.unpack(raw)[0])
            total = int(txn.stat(self.db)["entries"])
            progress = (Progress(log, "restoring mvcc key index", total, "revisions", _PROGRESS_INTERVAL)
                        if total >= _PROGRESS_MIN else None)
            packed, last = _scan_index(txn.cursor(db=self.db), progress)
            self.index = TreeIndex.from_packed(packed)
            self.current_rev = max(self.current_rev, last)
            if progress is not None:
                progress.finish(total, keys=len(self.index), **{"current-revision": self.current_rev})

    @property
    def db(self) -> lmdb._Database:
        return self.backend.db(KEY)

    @property
    def meta(self) -> lmdb._Database:
        return self.backend.db(META)

    def first_rev(self) -> int:
        return self.compact_rev

    def read_rev(self) -> int:
        return self.current_rev

    def check_rev(self, rev: int, current: int | None = None) -> int:
        """The revision a read at ``rev`` uses, or etcd's error for a compacted/future one."""
        cur = self.current_rev if current is None else current
        if rev > cur:
            raise errors.ErrFutureRev()
        if rev <= 0:
            return cur
        if rev < self.compact_rev:
            raise errors.ErrCompacted()
        return rev

    def range(self, key: bytes, end: bytes | None, rev: int = 0, limit: int = 0,
              count_only: bool = False) -> RangeResult:
        current = self.current_rev
        at = self.check_rev(rev, current)
        with self.backend.read() as txn:
            kvs, count = _read_range(self.index, txn, self.db, key, end, at, limit, count_only)
        return RangeResult(kvs, count, current)

    def get_at(self, key: bytes, rev: int) -> bytes | None:
        """The serialized KeyValue of ``key`` as of revision ``rev`` (for prev_kv of events)."""
        found = self.index.revision_at(key, rev)
        if found is None:
            return None
        with self.backend.read() as txn:
            value = txn.get(encode_revision(found.main, found.sub), db=self.db)
            return None if value is None else bytes(value)

    def history(self, start_rev: int, end_rev: int, limit: int = 0) -> list[Change]:
        """Changes with start_rev <= main revision <= end_rev, in revision order (watch replay)."""
        return self.history_and_compaction(start_rev, end_rev, limit)[0]

    def history_and_compaction(self, start_rev: int, end_rev: int, limit: int = 0) -> tuple[list[Change], int]:
        """``history`` and the compaction point of the same read snapshot. A compaction's rows are gone
        as soon as its turn commits, but ``compact_rev`` moves only when the turn is published on the
        event loop: a reader in between must judge what it read by the snapshot's compaction point."""
        out: list[Change] = []
        with self.backend.read() as txn:
            raw_compact = txn.get(_META_COMPACT_REV, db=self.meta)
            compact = max(self.compact_rev, _I64.unpack(raw_compact)[0] if raw_compact is not None else -1)
            cursor = txn.cursor(db=self.db)
            if not cursor.set_range(main_revision_prefix(start_rev)):
                return out, compact
            kv = kv_pb2.KeyValue()
            for n, (raw_rev, raw_value) in enumerate(cursor.iternext(), 1):
                rev, tombstone = decode_revision(bytes(raw_rev))
                if rev.main > end_rev:
                    break
                value = bytes(raw_value)
                if n % _FRESH_MESSAGE_EVERY == 0:
                    kv = kv_pb2.KeyValue()  # see _FRESH_MESSAGE_EVERY
                kv.ParseFromString(value)
                if tombstone:
                    out.append(Change(DELETE, kv.key, rev.main,
                                      kv_pb2.KeyValue(key=kv.key, mod_revision=rev.main).SerializeToString()))
                else:
                    out.append(Change(PUT, kv.key, rev.main, value))
                if limit and len(out) >= limit:
                    break
        return out, compact

    def hash_kv(self, rev: int) -> tuple[int, int, int]:
        """etcd's HashKV: CRC-32C of the key bucket's rows up to ``rev``, skipping rows the last
        compaction scheduled for deletion. Our rows are byte-identical to etcd's (revision keys,
        KeyValue values), so equal histories hash equally. Returns (hash, revision, compact rev)."""
        compact, current = self.compact_rev, self.current_rev
        if 0 < rev <= compact:
            raise errors.ErrCompacted()
        if rev > current:
            raise errors.ErrFutureRev()
        rev = rev or current
        keep = revisions_to_keep(self.index, rev)
        h = crc32c.crc32c(KEY)
        with self.backend.read() as txn:
            for raw_key, raw_value in txn.cursor(db=self.db).iternext():
                k = bytes(raw_key)
                r, _ = decode_revision(k)
                if r.main > rev:
                    break
                if r.main <= compact and keep and (r.main, r.sub) not in keep:
                    continue
                h = crc32c.crc32c(k, h)
                h = crc32c.crc32c(bytes(raw_value), h)
        return h, current, compact

    def writer(self, txn: lmdb.Transaction) -> StoreWriter:
        return StoreWriter(self, txn)

    def publish(self, batch: StoreWriter) -> None:
        """Make a committed batch visible to readers (call on the readers' thread)."""
        batch.index.publish()
        for at_rev in batch.compactions:
            self.index.compact(at_rev)
        self.compact_rev = batch.compact_rev
        self.current_rev = batch.rev


@dataclass
class StoreWriter:
    """All key-space writes of one apply batch, inside the batch's LMDB write transaction."""

    store: KVStore
    txn: lmdb.Transaction
    index: BatchIndex = field(init=False)
    rev: int = field(init=False)
    compact_rev: int = field(init=False)
    changes: list[Change] = field(default_factory=list)
    compactions: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.index = BatchIndex(self.store.index)
        self.rev = self.store.current_rev
        self.compact_rev = self.store.compact_rev

    def begin(self) -> TxnWrite:
        """One etcd write transaction: all its changes share one main revision."""
        return TxnWrite(self)

    @contextmanager
    def etcd_txn(self) -> Iterator[TxnWrite]:
        """``begin`` as a context: the txn is ended (its revision taken if it wrote) on exit."""
        t = TxnWrite(self)
        try:
            yield t
        finally:
            t.end()

    def compact(self, at_rev: int) -> int:
        """Compact history before ``at_rev``; returns the current revision (etcd's header)."""
        if at_rev <= self.compact_rev:
            raise errors.ErrCompacted()
        if at_rev > self.rev:
            raise errors.ErrFutureRev()
        failpoints.hit("compact.before")
        keep = revisions_to_keep(self.index, at_rev)
        cursor = self.txn.cursor(db=self.store.db)
        positioned = cursor.first()
        while positioned:
            raw = bytes(cursor.key())
            if not raw:  # a delete moved the cursor past the last row
                break
            rev, _ = decode_revision(raw)
            if rev.main > at_rev:
                break
            # delete() moves to the next row itself
            positioned = cursor.delete() if rev not in keep else cursor.next()
        failpoints.hit("compact.after")
        self.compact_rev = at_rev
        self.compactions.append(at_rev)
        self.txn.put(_META_COMPACT_REV, _I64.pack(at_rev), db=self.store.meta)
        return self.rev

    def finish(self) -> None:
        self.txn.put(_META_CURRENT_REV, _I64.pack(self.rev), db=self.store.meta)


class TxnWrite:
    """Reads and writes of one etcd txn; reads see the txn's own earlier writes."""

    def __init__(self, writer: StoreWriter) -> None:
        self.w = writer
        self.begin_rev = writer.rev
        self.changes: list[Change] = []

    @property
    def write_rev(self) -> int:
        return self.begin_rev + 1

    def read_rev(self) -> int:
        return self.begin_rev + 1 if self.changes else self.begin_rev

    def first_rev(self) -> int:
        return self.w.compact_rev

    def range(self, key: bytes, end: bytes | None, rev: int = 0, limit: int = 0,
              count_only: bool = False) -> RangeResult:
        current = self.read_rev()
        if rev > current:
            raise errors.ErrFutureRev()
        at = current if rev <= 0 else rev
        if rev > 0 and rev < self.w.compact_rev:
            raise errors.ErrCompacted()
        kvs, count = _read_range(self.w.index, self.w.txn, self.w.store.db, key, end, at, limit, count_only)
        return RangeResult(kvs, count, current)

    def put(self, key: bytes, value: bytes, lease: int) -> int:
        rev = Revision(self.write_rev, len(self.changes))
        ki = self.w.index.for_update(key)
        live = ki.created_and_version()
        created, version = (live[0], live[1] + 1) if live else (rev.main, 1)
        kv = kv_pb2.KeyValue(key=key, value=value, create_revision=created, mod_revision=rev.main,
                             version=version, lease=lease).SerializeToString()
        self.w.txn.put(encode_revision(rev.main, rev.sub), kv, db=self.w.store.db)
        prev_lease = ki.lease
        ki.put(rev)
        ki.lease = lease
        self.changes.append(Change(PUT, key, rev.main, kv, lease, prev_lease))
        return rev.main

    def delete_range(self, key: bytes, end: bytes | None) -> tuple[int, int]:
        """Delete live keys in range; returns (number deleted, header revision)."""
        at = self.read_rev()
        doomed = []
        for k in self.w.index.keys_in_range(key, end):
            if self.w.index.revision_at(k, at) is not None:
                doomed.append(k)
        for k in doomed:
            self._delete(k)
        if doomed or self.changes:
            return len(doomed), self.write_rev
        return 0, self.begin_rev

    def _delete(self, key: bytes) -> None:
        rev = Revision(self.write_rev, len(self.changes))
        kv = kv_pb2.KeyValue(key=key).SerializeToString()
        self.w.txn.put(encode_revision(rev.main, rev.sub, tombstone=True), kv, db=self.w.store.db)
        ki = self.w.index.for_update(key)
        prev_lease = ki.lease
        ki.tombstone(rev)
        event_kv = kv_pb2.KeyValue(key=key, mod_revision=rev.main).SerializeToString()
        self.changes.append(Change(DELETE, key, rev.main, event_kv, 0, prev_lease))

    def end(self) -> list[Change]:
        """Close the txn: it used a revision only if it changed something."""
        if self.changes:
            self.w.rev = self.write_rev
            self.w.changes.extend(self.changes)
        return self.changes
