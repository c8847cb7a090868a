"""``pyetcdutl snapshot restore|status``: turn a snapshot into the data dir of a new
single-member cluster, or describe it (etcd 3.6's ``etcdutl snapshot``, mirrored).

A snapshot is etcd's: a bbolt database followed by the SHA-256 of it (what ``etcdctl snapshot
save`` writes, against real etcd or pyetcd). Older pyetcd snapshots — an LMDB copy with the same
trailer — are still accepted. A restore keeps the key space, leases and auth, and drops what
belonged to the old cluster: members and alarms (the raft log lives apart); the member bootstraps a new
cluster on first start.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import crc32c

from pyetcd.mvcc import KVStore
from pyetcd.storage.backend import ALARM, KEY, LEASE, MEMBERS, META, Backend
from pyetcd.storage.bolt import BoltError, BoltReader
from pyetcd.storage.bolt.page import MAGIC, PAGE_HEADER
from pyetcd.storage.etcdimport import copy_key_space

_DIGEST = hashlib.sha256().digest_size
_APPLIED_KEYS = (b"consistent_index", b"term")


class SnapshotError(Exception):
    """A snapshot that cannot be used; the message says why and what to do."""


def verify(path: Path, skip_hash_check: bool = False) -> int:
    """Check the SHA-256 trailer (etcd's rule: it follows a 512-byte aligned database), reading
    the file in chunks; returns the database's length."""
    size = path.stat().st_size
    if size % 512 != _DIGEST:
        if not skip_hash_check:
            raise SnapshotError(f"{path}: no integrity hash found (the file is cut short, or is a copy of a "
                                "data dir's db: then pass --skip-hash-check)")
        return size
    body = size - _DIGEST
    if skip_hash_check:
        return body
    digest = hashlib.sha256()
    with path.open("rb") as f:
        left = body
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
        if digest.digest() != f.read(_DIGEST):
            raise SnapshotError(f"{path}: snapshot integrity check failed (sha256 mismatch): the file is "
                                "damaged or truncated; take a new snapshot")
    return body


def is_bolt(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(PAGE_HEADER.size + 4)
    return len(head) == PAGE_HEADER.size + 4 and int.from_bytes(head[PAGE_HEADER.size:], "little") == MAGIC


def restore(snapshot: Path, data_dir: Path, skip_hash_check: bool = False) -> int:
    """Write a new member's data dir from a snapshot; returns the restored revision."""
    if data_dir.exists():
        raise SnapshotError(f"data-dir {data_dir} exists: choose a new --data-dir")
    length = verify(snapshot, skip_hash_check)
    snap_dir = data_dir / "member" / "snap"
    snap_dir.mkdir(parents=True)
    try:
        if is_bolt(snapshot):
            backend = Backend(snap_dir)
            try:
                with BoltReader(snapshot) as reader:
                    copy_key_space(reader, backend)
            except BoltError as e:
                backend.close()
                raise SnapshotError(f"{snapshot}: {e}") from e
        else:
            with snapshot.open("rb") as src, (snap_dir / "data.mdb").open("wb") as dst:
                _copy(src, dst, length)
            backend = Backend(snap_dir)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
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


def _copy(src: object, dst: object, length: int) -> None:
    left = length
    while left:
        chunk = src.read(min(left, 1 << 20))  # type: ignore[attr-defined]
        if not chunk:
            raise SnapshotError("snapshot cut short")
        dst.write(chunk)  # type: ignore[attr-defined]
        left -= len(chunk)


def bolt_status(snapshot: Path) -> dict[str, int]:
    """What ``etcdctl snapshot status`` prints: CRC-32C of every bucket name, key and value, the
    last revision in the key bucket, the number of rows, the database's size."""
    h, revision, total = 0, 0, 0
    with BoltReader(snapshot) as reader:
        for name, value in reader.buckets():
            h = crc32c.crc32c(name, h)
            for k, v, _ in reader.walk(value):
                h = crc32c.crc32c(v, crc32c.crc32c(k, h))
                if name == KEY:
                    revision = int.from_bytes(k[:8], "big")
                total += 1
        return {"hash": h, "revision": revision, "totalKey": total, "totalSize": reader.meta.hwm * reader.page_size}


def status(snapshot: Path, skip_hash_check: bool = False) -> dict[str, int]:
    verify(snapshot, skip_hash_check)
    if is_bolt(snapshot):
        try:
            return bolt_status(snapshot)
        except BoltError as e:
            raise SnapshotError(f"{snapshot}: {e}") from e
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "restored"
        restore(snapshot, target, skip_hash_check)
        backend = Backend(target / "member" / "snap")
        try:
            kv = KVStore(backend)
            with backend.read() as txn:
                leases = txn.stat(backend.db(LEASE))["entries"]
                revisions = txn.stat(backend.db(KEY))["entries"]
            live = kv.index.live_count()
            return {"revision": kv.current_rev, "total_keys": live, "revisions": revisions,
                    "leases": leases, "total_size": verify(snapshot, skip_hash_check)}
        finally:
            backend.close()


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
    s.add_argument("-w", "--write-out", choices=("simple", "json"), default="simple")
    args = parser.parse_args(argv)
    try:
        if args.command == "restore":
            data_dir = args.data_dir or Path(f"{args.name}.etcd")
            rev = restore(args.file, data_dir, args.skip_hash_check)
            print(f"restored snapshot {args.file} (revision {rev}) to {data_dir}; start it with "
                  f"pyetcd --name {args.name} --data-dir {data_dir} ...")
        elif args.write_out == "json":
            print(json.dumps(status(args.file, args.skip_hash_check)))
        else:
            for k, v in status(args.file, args.skip_hash_check).items():
                print(f"{k}: {v:x}" if k == "hash" else f"{k}: {v}")
    except (SnapshotError, OSError) as e:
        print(f"pyetcdutl snapshot: {e}", file=sys.stderr)
        return 1
    return 0
