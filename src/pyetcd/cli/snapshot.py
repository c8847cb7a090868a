"""``pyetcdutl snapshot restore|status``: turn a snapshot (``etcdctl snapshot save`` against
pyetcd) into the data dir of a new single-member cluster, or describe it.

The snapshot is our LMDB environment, followed by the SHA-256 of it as etcd appends one. A
restore keeps the key space, leases and auth, and drops what belonged to the old cluster: the
members and alarms (the raft log lives apart from the store); the member bootstraps a new cluster on first start.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

from pyetcd.mvcc import KVStore
from pyetcd.storage.backend import ALARM, KEY, LEASE, MEMBERS, META, Backend

_PAGE = 4096
_DIGEST = hashlib.sha256().digest_size
_APPLIED_KEYS = (b"consistent_index", b"term")


class SnapshotError(Exception):
    """A snapshot that cannot be used; the message says why and what to do."""


def read_snapshot(path: Path, skip_hash_check: bool = False) -> bytes:
    data = path.read_bytes()
    if len(data) % _PAGE == _DIGEST:  # etcd's rule: a digest follows the page-aligned database
        body, digest = data[:-_DIGEST], data[-_DIGEST:]
        if hashlib.sha256(body).digest() != digest and not skip_hash_check:
            raise SnapshotError(f"{path}: snapshot integrity check failed (sha256 mismatch); "
                                "the file is damaged or truncated")
        return body
    if not skip_hash_check:
        raise SnapshotError(f"{path}: no integrity hash found; if this is a copy of a data dir's data.mdb, "
                            "pass --skip-hash-check")
    return data


def restore(snapshot: Path, data_dir: Path, skip_hash_check: bool = False) -> int:
    """Write a new member's data dir from a snapshot; returns the restored revision."""
    if data_dir.exists():
        raise SnapshotError(f"data-dir {data_dir} exists: choose a new --data-dir")
    body = read_snapshot(snapshot, skip_hash_check)
    snap_dir = data_dir / "member" / "snap"
    snap_dir.mkdir(parents=True)
    (snap_dir / "data.mdb").write_bytes(body)
    backend = Backend(snap_dir)
    try:
        txn = backend.begin_write()
        for bucket in (MEMBERS, ALARM):
            txn.drop(backend.db(bucket), delete=False)
        for key in _APPLIED_KEYS:
            txn.delete(key, db=backend.db(META))
        txn.commit()
        return KVStore(backend).current_rev
    finally:
        backend.close()


def status(snapshot: Path, skip_hash_check: bool = False) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "restored"
        restore(snapshot, target, skip_hash_check)
        backend = Backend(target / "member" / "snap")
        try:
            kv = KVStore(backend)
            with backend.read() as txn:
                leases = txn.stat(backend.db(LEASE))["entries"]
                revisions = txn.stat(backend.db(KEY))["entries"]
            live = sum(1 for _, ki in kv.index.items() if ki.alive)
            return {"revision": kv.current_rev, "total_keys": live, "revisions": revisions,
                    "leases": leases, "total_size": len(read_snapshot(snapshot, skip_hash_check))}
        finally:
            backend.close()
            shutil.rmtree(target, ignore_errors=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pyetcdutl snapshot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("restore", help="create a new member's data dir from a snapshot")
    r.add_argument("file", type=Path)
    r.add_argument("--data-dir", type=Path, help="the new data dir (default <name>.etcd)")
    r.add_argument("--name", default="default")
    r.add_argument("--skip-hash-check", action="store_true")
    s = sub.add_parser("status", help="describe a snapshot")
    s.add_argument("file", type=Path)
    s.add_argument("--skip-hash-check", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "restore":
            data_dir = args.data_dir or Path(f"{args.name}.etcd")
            rev = restore(args.file, data_dir, args.skip_hash_check)
            print(f"restored snapshot {args.file} (revision {rev}) to {data_dir}; start it with "
                  f"pyetcd --name {args.name} --data-dir {data_dir} ...")
        else:
            for k, v in status(args.file, args.skip_hash_check).items():
                print(f"{k}: {v}")
    except (SnapshotError, OSError) as e:
        print(f"pyetcdutl snapshot: {e}", file=sys.stderr)
        return 1
    return 0
