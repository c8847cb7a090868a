"""Leases in the LEASE bucket: 8-byte big-endian id -> ``LeaseRecord`` (etcd's leasepb.Lease).

Only what every member agrees on is stored (id, granted TTL, checkpointed remaining TTL),
never an expiry time: clocks differ between members and across restarts.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import lmdb

from pyetcd.api import internal_pb2
from pyetcd.storage.backend import LEASE, Backend

_ID = struct.Struct(">q")


class LeaseRecords:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @property
    def db(self) -> lmdb._Database:
        """Looked up at use: defragmentation reopens the environment."""
        return self.backend.db(LEASE)

    def exists(self, txn: lmdb.Transaction, lease_id: int) -> bool:
        return txn.get(_ID.pack(lease_id), db=self.db) is not None

    def get(self, txn: lmdb.Transaction, lease_id: int) -> internal_pb2.LeaseRecord | None:
        raw = txn.get(_ID.pack(lease_id), db=self.db)
        return None if raw is None else internal_pb2.LeaseRecord.FromString(bytes(raw))

    def put(self, txn: lmdb.Transaction, rec: internal_pb2.LeaseRecord) -> None:
        txn.put(_ID.pack(rec.ID), rec.SerializeToString(), db=self.db)

    def delete(self, txn: lmdb.Transaction, lease_id: int) -> None:
        txn.delete(_ID.pack(lease_id), db=self.db)

    def load(self) -> Iterator[internal_pb2.LeaseRecord]:
        with self.backend.read() as txn:
            for _, raw in txn.cursor(db=self.db).iternext():
                yield internal_pb2.LeaseRecord.FromString(bytes(raw))
