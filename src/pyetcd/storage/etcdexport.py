"""Our key-value store as etcd's backend file: what Maintenance.Snapshot streams, so that
``etcdctl snapshot status|restore`` (and real etcd started on the restored dir) accept it.

One LMDB read transaction, copied bucket by bucket through the bbolt writer: the store is never
held in memory, and writes go on meanwhile (they land after the transaction's view).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .backend import Backend
from .bolt import BoltWriter
from .etcdformat import ETCD_BUCKETS, export_rows

SHA256_SIZE = hashlib.sha256().digest_size


def write_etcd_db(backend: Backend, path: Path) -> int:
    """Write the store as an etcd bbolt database at ``path``; returns its size in bytes."""
    with backend.read() as txn, path.open("wb") as f:
        w = BoltWriter(f)
        for name in ETCD_BUCKETS:
            ours = ((bytes(k), bytes(v)) for k, v in txn.cursor(db=backend.db(name)).iternext()) \
                if name in backend.dbs else iter(())
            w.bucket(name, export_rows(name, ours))
        size = w.close()
        f.flush()
    return size
