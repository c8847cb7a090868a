"""Maintenance.Hash: one hash of the whole replicated store, as etcd's ``backend.Hash``.

etcd hashes every bucket of its bolt file (name, then each key and value, CRC-32C Castagnoli),
skipping only the meta keys that record how far this member has applied (``consistent_index``,
``term``). We do the same over our LMDB buckets in name order: the key-value revisions, the
store's meta (current and compacted revisions), leases, auth (users, roles, enabled, revision),
members and alarms. Left out, because they differ between members holding the same data: the
applied index and term in meta, and the raft log and raft state (each member's own log; etcd
keeps it in the WAL, outside the hashed file). So members that applied the same entries hash
equally; the value cannot equal etcd's, whose file layout differs (HashKV, which hashes only the
key-value rows, does equal etcd's).
"""

from __future__ import annotations

import crc32c

from pyetcd.storage.backend import BUCKETS, META, Backend

PER_MEMBER_BUCKETS = frozenset({b"raftlog", b"raftstate"})
PER_MEMBER_META = frozenset({b"consistent_index", b"term"})


def store_hash(backend: Backend) -> int:
    """CRC-32C of every replicated bucket's rows, in one read transaction."""
    h = 0
    with backend.read() as txn:
        for name in sorted(BUCKETS):
            if name in PER_MEMBER_BUCKETS:
                continue
            h = crc32c.crc32c(name, h)
            for key, value in txn.cursor(db=backend.db(name)).iternext():
                if name == META and bytes(key) in PER_MEMBER_META:
                    continue
                h = crc32c.crc32c(bytes(key), h)
                h = crc32c.crc32c(bytes(value), h)
    return h
