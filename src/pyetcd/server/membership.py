"""Cluster membership: member and cluster ids as etcd derives them, and the stored member list."""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

import lmdb

from pyetcd import errors
from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.raft import ConfChange, ConfChangeType, ConfState
from pyetcd.storage.backend import MEMBERS, MEMBERS_REMOVED, Backend

from .batch import ApplyBatch

_ID = struct.Struct(">Q")


def member_id(peer_urls: list[str], cluster_token: str) -> int:
    """etcd's NewMember id: sha1 of the sorted peer URLs and the cluster token."""
    digest = hashlib.sha1(("".join(sorted(peer_urls)) + cluster_token).encode()).digest()
    return int(_ID.unpack(digest[:8])[0])


MAX_LEARNERS = 1  # etcd's default --experimental-max-learners


def _check_urls(urls: list[str]) -> None:
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None or parts.path not in ("", "/"):
            raise errors.ErrMemberBadURLs()
    if not urls:
        raise errors.ErrMemberBadURLs()


def cluster_id(member_ids: list[int]) -> int:
    digest = hashlib.sha1(b"".join(_ID.pack(i) for i in sorted(member_ids))).digest()
    return int(_ID.unpack(digest[:8])[0])


class Membership:
    """The members as stored in the ``members`` bucket; read by the event loop, written by apply."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.reload()

    def reload(self) -> None:
        """Read the member list (at start, or after a leader's snapshot replaced the store)."""
        self.members: dict[int, internal_pb2.MemberRecord] = {}
        with self.backend.read() as txn:
            for rec in read_members(txn, self.db):
                self.members[rec.ID] = rec
            raw = txn.get(b"cluster_id", db=self.db)
            self.cluster_id = _ID.unpack(bytes(raw))[0] if raw is not None else 0
            self.removed = {_ID.unpack(bytes(k))[0] for k, _ in txn.cursor(db=self.backend.db(MEMBERS_REMOVED))}
        self._latest = dict(self.members)  # the apply thread's view, ahead of ``members`` within a batch

    @property
    def db(self) -> lmdb._Database:
        return self.backend.db(MEMBERS)

    def bootstrap(self, txn: lmdb.Transaction, initial: dict[str, list[str]], token: str) -> None:
        """A new cluster: every member of --initial-cluster, ids as etcd derives them."""
        records = [internal_pb2.MemberRecord(ID=member_id(urls, token), name=name, peer_urls=urls)
                   for name, urls in initial.items()]
        self.adopt(txn, cluster_id([r.ID for r in records]), records)

    def adopt(self, txn: lmdb.Transaction, cid: int, records: list[internal_pb2.MemberRecord]) -> None:
        """Store a member list and cluster id (a new cluster's, or one learned when joining)."""
        for rec in records:
            txn.put(_ID.pack(rec.ID), rec.SerializeToString(), db=self.db)
            self.members[rec.ID] = rec
        self._latest = dict(self.members)
        self.cluster_id = cid
        txn.put(b"cluster_id", _ID.pack(cid), db=self.db)

    def delete(self, txn: lmdb.Transaction, mid: int) -> None:
        """Drop a member outside raft (--force-new-cluster only)."""
        txn.delete(_ID.pack(mid), db=self.db)

    def conf_state(self) -> ConfState:
        """The raft membership this member list stands for."""
        return conf_state_of(self.members.values())

    def peer_urls(self, exclude: int = 0) -> dict[int, list[str]]:
        return {m.ID: list(m.peer_urls) for m in self.members.values() if exclude != m.ID}

    def apply_attributes(self, batch: ApplyBatch, attrs: internal_pb2.MemberAttributes) -> rpc_pb2.ResponseHeader:
        """A member published its name and client URLs through raft."""
        raw = batch.txn.get(_ID.pack(attrs.ID), db=self.db)
        if raw is None:
            return rpc_pb2.ResponseHeader()
        rec = internal_pb2.MemberRecord.FromString(bytes(raw))
        rec.name = attrs.name
        del rec.client_urls[:]
        rec.client_urls.extend(attrs.client_urls)
        batch.txn.put(_ID.pack(rec.ID), rec.SerializeToString(), db=self.db)
        self._stage(batch, {**self._latest, rec.ID: rec})
        return rpc_pb2.ResponseHeader()

    # ---- changes: validated on the event loop, applied through raft -------------------------
    def new_member(self, peer_urls: list[str], is_learner: bool) -> internal_pb2.MemberRecord:
        """A member to add, checked as etcd checks MemberAdd (URLs, duplicates, learner limit)."""
        _check_urls(peer_urls)
        self._check_urls_free(peer_urls, except_id=0)
        if is_learner and sum(m.is_learner for m in self.members.values()) >= MAX_LEARNERS:
            raise errors.ErrTooManyLearners()
        # etcd's v3 MemberAdd: NewMember("", urls, "", now): the add time makes the id unique
        rec = internal_pb2.MemberRecord(ID=member_id(peer_urls, str(int(time.time()))), peer_urls=peer_urls,
                                        is_learner=is_learner)
        if rec.ID in self.members:
            raise errors.ErrMemberExist()
        return rec

    def check_update(self, r: rpc_pb2.MemberUpdateRequest) -> None:
        _check_urls(list(r.peerURLs))
        if r.ID not in self.members:
            raise errors.ErrMemberNotFound()
        self._check_urls_free(list(r.peerURLs), except_id=r.ID)

    def check_remove(self, member: int, self_id: int) -> None:
        if member not in self.members:
            raise errors.ErrMemberNotFound()
        voters = [m for m in self.members.values() if not m.is_learner]
        if member == self_id and len(voters) == 1:
            raise errors.ErrMemberNotEnoughStarted()

    def check_promote(self, member: int) -> None:
        rec = self.members.get(member)
        if rec is None:
            raise errors.ErrMemberNotFound()
        if not rec.is_learner:
            raise errors.ErrMemberNotLearner()

    def _check_urls_free(self, peer_urls: list[str], except_id: int) -> None:
        taken = {u for m in self.members.values() if except_id != m.ID for u in m.peer_urls}
        if taken & set(peer_urls):
            raise errors.ErrPeerURLExist()

    def apply_conf_change(self, batch: ApplyBatch, cc: ConfChange,
                          ctx: internal_pb2.ConfChangeContext) -> list[rpc_pb2.Member]:
        """Apply thread: record a committed conf change; returns the members after it."""
        members = dict(self._latest)
        if cc.type == ConfChangeType.REMOVE_NODE:
            batch.txn.delete(_ID.pack(cc.node_id), db=self.db)
            batch.txn.put(_ID.pack(cc.node_id), b"removed", db=self.backend.db(MEMBERS_REMOVED))
            members.pop(cc.node_id, None)
            removed = self.removed | {cc.node_id}
            batch.on_publish(lambda: setattr(self, "removed", removed))
        else:
            rec = internal_pb2.MemberRecord()
            rec.CopyFrom(members.get(cc.node_id) or ctx.member)
            rec.is_learner = cc.type == ConfChangeType.ADD_LEARNER_NODE
            batch.txn.put(_ID.pack(rec.ID), rec.SerializeToString(), db=self.db)
            members[rec.ID] = rec
        self._stage(batch, members)
        return _as_proto(members)

    def apply_update(self, batch: ApplyBatch, r: rpc_pb2.MemberUpdateRequest) -> rpc_pb2.MemberUpdateResponse:
        rec = self._latest.get(r.ID)
        if rec is None:
            raise errors.ErrMemberNotFound()
        updated = internal_pb2.MemberRecord()
        updated.CopyFrom(rec)
        del updated.peer_urls[:]
        updated.peer_urls.extend(r.peerURLs)
        batch.txn.put(_ID.pack(r.ID), updated.SerializeToString(), db=self.db)
        members = {**self._latest, r.ID: updated}
        self._stage(batch, members)
        return rpc_pb2.MemberUpdateResponse(members=_as_proto(members))

    def _stage(self, batch: ApplyBatch, members: dict[int, internal_pb2.MemberRecord]) -> None:
        """Later entries of the batch see ``members`` at once; readers once it is durable."""
        self._latest = members
        batch.on_publish(lambda: setattr(self, "members", members))

    def as_proto(self) -> list[rpc_pb2.Member]:
        return _as_proto(self.members)


def conf_state_of(members: Iterable[internal_pb2.MemberRecord]) -> ConfState:
    ms = list(members)
    return ConfState(voters=tuple(sorted(m.ID for m in ms if not m.is_learner)),
                     learners=tuple(sorted(m.ID for m in ms if m.is_learner)))


def read_members(txn: lmdb.Transaction, db: lmdb._Database) -> list[internal_pb2.MemberRecord]:
    """The member records of a ``members`` bucket (any environment: the live store or a copy)."""
    return [internal_pb2.MemberRecord.FromString(bytes(v)) for k, v in txn.cursor(db=db).iternext()
            if bytes(k) != b"cluster_id"]


def _as_proto(members: dict[int, internal_pb2.MemberRecord]) -> list[rpc_pb2.Member]:
    return [rpc_pb2.Member(ID=m.ID, name=m.name, peerURLs=list(m.peer_urls), clientURLs=list(m.client_urls),
                           isLearner=m.is_learner) for m in sorted(members.values(), key=lambda m: m.ID)]
