"""Start on etcd's data dir: convert ``member/snap/db`` (bbolt), ``member/wal/*.wal`` and
``member/snap/*.snap`` — what a stopped etcd or ``etcdctl snapshot restore`` leaves — into our
store, once, at first start. etcd's files are only read; ours are built in a scratch directory
and moved into place last, so an interrupted import starts over.

What carries over: every bucket of the key space (same revisions, compaction, leases, users,
roles, auth revision, alarms); the member's identity (the WAL's node and cluster ids); the
members (etcd 3.4 keeps them in the v2 store of the .snap file and in conf-change entries; its
bolt bucket may be stale after a restore); the raft position (hard state, and the applied
index — the db's consistent_index — as our snapshot point). Committed WAL entries past the
applied index are translated into our requests and applied at start, as etcd would replay them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lmdb

from pyetcd.api import internal_pb2
from pyetcd.raft import ConfState, Entry, EntryType, HardState, SnapshotMetadata

from .backend import ALARM, MEMBERS, META, Backend
from .bolt import BoltError, BoltReader
from .etcdformat import (
    CONSISTENT_INDEX,
    KEY,
    SAME_ENCODING,
    TERM,
    import_alarm_key,
    import_members,
    import_meta,
    member_from_etcd,
    u64,
)
from .etcdwal import ConfChange, RaftSnapshot, WalContents, WalError, read_latest_snap, read_wal
from .etcdwal.wire import CC_ADD_LEARNER, CC_REMOVE_NODE, ENTRY_CONF_CHANGE, ENTRY_NORMAL, WireError, as_dict
from .raftlog import RaftLog

log = logging.getLogger("pyetcd.import")

_SCRATCH = ".pyetcd-import"
_CHUNK_ROWS = 20000
_CHUNK_BYTES = 64 * 1024 * 1024
_PROGRESS_EVERY = 5.0  # seconds between progress lines

# etcd's InternalRaftRequest field numbers -> our InternalRequest fields (raft_internal.proto)
_REQUESTS = {4: "put", 5: "delete_range", 6: "txn", 7: "compaction", 8: "lease_grant", 9: "lease_revoke",
             10: "alarm", 11: "lease_checkpoint", 1000: "auth_enable", 1011: "auth_disable",
             1012: "authenticate", 1100: "auth_user_add", 1101: "auth_user_delete",
             1103: "auth_user_change_password", 1104: "auth_user_grant_role", 1105: "auth_user_revoke_role",
             1200: "auth_role_add", 1201: "auth_role_delete", 1203: "auth_role_grant_permission",
             1204: "auth_role_revoke_permission"}
_HEADER = 100


class EtcdDataDirError(Exception):
    """An etcd data dir we cannot convert; the message says why and what to do."""


def import_etcd_data_dir(data_dir: Path) -> bool:
    """Convert an etcd data dir into our store at first start; True if it did. The ONE entry point."""
    snap_dir = data_dir / "member" / "snap"
    if not (snap_dir / "db").is_file() or (snap_dir / "data.mdb").exists():
        return False
    wal_dir = data_dir / "member" / "wal"
    if not wal_dir.is_dir():
        raise EtcdDataDirError(f"{data_dir}: found etcd's member/snap/db but no member/wal: to start from a "
                               "bare db, restore it with `pyetcdutl snapshot restore --skip-hash-check`")
    log.info("converting etcd data dir %s into pyetcd's store (etcd's files are left untouched)", data_dir)
    scratch = snap_dir / _SCRATCH
    raft_dir = data_dir / "member" / "raft"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(raft_dir, ignore_errors=True)  # left by an import a crash interrupted
    backend = Backend(scratch)
    try:
        pos = _convert(snap_dir / "db", wal_dir, snap_dir, backend)
        backend.env.sync(True)
        write_raft_state(raft_dir, pos)
    except BaseException:
        backend.close()
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(raft_dir, ignore_errors=True)
        raise
    backend.close()
    (scratch / "data.mdb").replace(snap_dir / "data.mdb")  # the commit point
    fd = os.open(snap_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    shutil.rmtree(scratch, ignore_errors=True)
    log.info("converted etcd data dir %s", data_dir)
    return True


@dataclass
class RaftPosition:
    """Where the imported member stands in raft: what ``write_raft_state`` persists."""

    local_id: int
    cluster_id: int
    applied: int
    applied_term: int
    hard_state: HardState
    conf: ConfState
    entries: list[Entry]


def _convert(db: Path, wal_dir: Path, snap_dir: Path, backend: Backend) -> RaftPosition:
    try:
        wal = read_wal(wal_dir)
        snap = read_latest_snap(snap_dir, at_most=wal.hard_state.commit or None)
        with BoltReader(db) as reader:
            copy_key_space(reader, backend)
            applied = max(u64(_meta_value(reader, CONSISTENT_INDEX)), snap.meta.index if snap else 0)
            known = {int(m["id"]): m for m in _bolt_members(reader)}  # type: ignore[call-overload]
    except (BoltError, WalError, OSError, ValueError) as e:
        raise EtcdDataDirError(f"cannot convert etcd's data dir (left as it was): {e}") from e
    pos = _raft_position(wal, snap, applied, known)
    txn = backend.begin_write()
    try:
        members = [_member(known.get(i, {}), i, i in pos.conf.learners) for i in (*pos.conf.voters, *pos.conf.learners)]
        for k, v in import_members(members, pos.cluster_id):
            txn.put(k, v, db=backend.db(MEMBERS))
        txn.put(CONSISTENT_INDEX, pos.applied.to_bytes(8, "big"), db=backend.db(META))
        txn.put(TERM, pos.applied_term.to_bytes(8, "big"), db=backend.db(META))
        txn.commit()
    except BaseException:
        txn.abort()
        raise
    log.info("imported member %x of cluster %x: %d members, applied index %d (term %d), %d WAL entries to replay",
             pos.local_id, pos.cluster_id, len(members), pos.applied, pos.applied_term, len(pos.entries))
    return pos


def write_raft_state(raft_dir: Path, pos: RaftPosition) -> None:
    """The imported member's raft log (its own environment): its id, a snapshot point at the
    applied index with the members as voters/learners, etcd's hard state, and the WAL's entries
    past the applied index."""
    raftlog = RaftLog(raft_dir)
    try:
        txn = raftlog.begin_write()
        try:
            raftlog.bootstrap(txn, pos.local_id, pos.conf)
            raftlog.persist(txn, pos.entries, pos.hard_state, SnapshotMetadata(pos.applied, pos.applied_term, pos.conf))
            raftlog.persist_conf_state(txn, pos.conf)
            txn.commit()
        except BaseException:
            txn.abort()
            raise
    finally:
        raftlog.close()


def _raft_position(wal: WalContents, snap: RaftSnapshot | None, applied: int,
                   known: dict[int, dict[str, object]]) -> RaftPosition:
    base = snap.meta if snap is not None else None
    if snap is not None:
        for mid, body in snap.members.items():
            known.setdefault(mid, {}).update(body)
    voters = set(base.conf_state.voters) if base else set()
    learners = set(base.conf_state.learners) if base else set()
    start = base.index if base else 0
    commit = max(wal.hard_state.commit, applied)
    for index in sorted(i for i in wal.entries if start < i <= commit):
        e = wal.entries[index]
        if e.type != ENTRY_CONF_CHANGE:
            continue
        cc = ConfChange.decode(e.data)
        voters.discard(cc.node_id)
        learners.discard(cc.node_id)
        if cc.type != CC_REMOVE_NODE:
            (learners if cc.type == CC_ADD_LEARNER else voters).add(cc.node_id)
            if cc.context:
                known.setdefault(cc.node_id, {}).update(json.loads(cc.context))
    term = wal.term_at(applied) if applied else 0
    if term is None:
        if base is not None and applied == base.index:
            term = base.term
        else:
            raise EtcdDataDirError(f"etcd's WAL has no entry at the applied index {applied} (the WAL was purged "
                               "past it?): start real etcd on this data dir once, stop it, and try again")
    if wal.node_id not in voters | learners:
        raise EtcdDataDirError(f"member {wal.node_id:x} named in etcd's WAL is not a member of its cluster")
    entries = [Entry(e.term, e.index, EntryType.NORMAL, translate_request(e.data) if e.type == ENTRY_NORMAL else b"")
               for i, e in sorted(wal.entries.items()) if i > applied]
    hs = HardState(wal.hard_state.term, wal.hard_state.vote, commit)
    return RaftPosition(wal.node_id, wal.cluster_id, applied, term, hs,
                         ConfState(tuple(sorted(voters)), tuple(sorted(learners))), entries)


def translate_request(data: bytes) -> bytes:
    """etcd's InternalRaftRequest as our InternalRequest; b"" (a no-op entry) for what has no
    effect on our store: v2 requests (member attributes, cluster version) and reads."""
    try:
        fields = as_dict(data)
    except WireError:
        return b""
    if _HEADER not in fields:  # a v2 etcdserverpb.Request, not an InternalRaftRequest
        return b""
    req = internal_pb2.InternalRequest()
    req.header.MergeFromString(bytes(fields[_HEADER][-1]))  # type: ignore[arg-type]
    for num, name in _REQUESTS.items():
        if num in fields:
            getattr(req, name).MergeFromString(bytes(fields[num][-1]))  # type: ignore[arg-type]
            return req.SerializeToString()
    return b""


def _member(body: dict[str, object], mid: int, learner: bool) -> internal_pb2.MemberRecord:
    return member_from_etcd({**body, "id": mid, "isLearner": learner})


def _bolt_members(reader: BoltReader) -> Iterator[dict[str, object]]:
    for _, v, _ in reader.items(MEMBERS):
        body = json.loads(v)
        if isinstance(body, dict) and "id" in body:
            yield body


def _meta_value(reader: BoltReader, key: bytes) -> bytes | None:
    for k, v, _ in reader.items(META):
        if k == key:
            return v
    return None


def copy_key_space(reader: BoltReader, backend: Backend) -> int:
    """Copy the key space of an etcd bbolt file into our store (every bucket but members);
    returns the number of rows. Commits in chunks, logging progress for large files."""
    total = reader.meta.hwm * reader.page_size
    copier = _Copier(backend, total)
    max_rev = 0
    try:
        for bucket in SAME_ENCODING:
            for k, v, _ in reader.items(bucket):
                copier.put(bucket, k, v)
                if bucket == KEY:
                    max_rev = int.from_bytes(k[:8], "big")
        for k, _, _ in reader.items(ALARM):
            copier.put(ALARM, import_alarm_key(k), b"")
        meta = {k: v for k, v, _ in reader.items(META)}
        for k, v in sorted(import_meta(meta, max_rev).items()):
            copier.put(META, k, v)
        copier.finish()
    except lmdb.Error as e:
        copier.abort()
        raise BoltError(f"rows out of order or unreadable ({e}): the database is damaged") from e
    return copier.rows


class _Copier:
    """Puts in key order, committed every so many rows or bytes, with progress in the log."""

    def __init__(self, backend: Backend, total_bytes: int) -> None:
        self.backend, self.total = backend, total_bytes
        self.txn = backend.begin_write()
        self.rows = self.pending_rows = self.bytes = self.pending_bytes = 0
        self.next_log = time.monotonic() + _PROGRESS_EVERY

    def put(self, bucket: bytes, k: bytes, v: bytes) -> None:
        if not self.txn.put(k, v, db=self.backend.db(bucket), append=True):
            raise lmdb.Error(f"duplicate key in bucket {bucket.decode()}")
        self.rows += 1
        self.pending_rows += 1
        self.pending_bytes += len(k) + len(v)
        if self.pending_rows >= _CHUNK_ROWS or self.pending_bytes >= _CHUNK_BYTES:
            self.txn.commit()
            self.bytes += self.pending_bytes
            self.pending_rows = self.pending_bytes = 0
            self.txn = self.backend.begin_write()
            if time.monotonic() >= self.next_log:
                self.next_log = time.monotonic() + _PROGRESS_EVERY
                log.info("importing etcd's db: %d rows, %d of ~%d MiB", self.rows, self.bytes >> 20, self.total >> 20)

    def finish(self) -> None:
        self.txn.commit()

    def abort(self) -> None:
        self.txn.abort()
