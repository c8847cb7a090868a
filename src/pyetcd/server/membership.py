"""Cluster membership: member and cluster ids as etcd derives them, and the stored member list."""

from __future__ import annotations

import hashlib
import struct

import lmdb

from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.storage.backend import MEMBERS, Backend

from .batch import ApplyBatch

_ID = struct.Struct(">Q")


def member_id(peer_urls: list[str], cluster_token: str) -> int:
    """etcd's NewMember id: sha1 of the sorted peer URLs and the cluster token."""
    digest = hashlib.sha1(("".join(sorted(peer_urls)) + cluster_token).encode()).digest()
    return int(_ID.unpack(digest[:8])[0])


def cluster_id(member_ids: list[int]) -> int:
    digest = hashlib.sha1(b"".join(_ID.pack(i) for i in sorted(member_ids))).digest()
    return int(_ID.unpack(digest[:8])[0])


class Membership:
    """The members as stored in the ``members`` bucket; read by the event loop, written by apply."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.members: dict[int, internal_pb2.MemberRecord] = {}
        with backend.read() as txn:
            for k, v in txn.cursor(db=self.db).iternext():
                if bytes(k) == b"cluster_id":
                    continue
                rec = internal_pb2.MemberRecord.FromString(bytes(v))
                self.members[rec.ID] = rec
            raw = txn.get(b"cluster_id", db=self.db)
            self.cluster_id = _ID.unpack(bytes(raw))[0] if raw is not None else 0

    @property
    def db(self) -> lmdb._Database:
        return self.backend.db(MEMBERS)

    def bootstrap(self, txn: lmdb.Transaction, initial: dict[str, list[str]], token: str) -> None:
        ids = []
        for name, urls in initial.items():
            rec = internal_pb2.MemberRecord(ID=member_id(urls, token), name=name, peer_urls=urls)
            txn.put(_ID.pack(rec.ID), rec.SerializeToString(), db=self.db)
            self.members[rec.ID] = rec
            ids.append(rec.ID)
        self.cluster_id = cluster_id(ids)
        txn.put(b"cluster_id", _ID.pack(self.cluster_id), db=self.db)

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
        batch.on_publish(lambda: self.members.__setitem__(rec.ID, rec))
        return rpc_pb2.ResponseHeader()

    def as_proto(self) -> list[rpc_pb2.Member]:
        return [rpc_pb2.Member(ID=m.ID, name=m.name, peerURLs=list(m.peer_urls), clientURLs=list(m.client_urls),
                               isLearner=m.is_learner) for m in sorted(self.members.values(), key=lambda m: m.ID)]
