"""The LMDB environment that holds the key-value store and the rest of the applied state.

One environment, several named databases ("buckets", as etcd calls them). The raft log lives
apart (storage/raftlog.py) and is durable at every commit; the store needs less. It is opened
with ``metasync`` off: a commit flushes its data pages but writes the meta page that makes it
current without a flush of its own, so the next commit's flush makes it durable. LMDB keeps
every commit atomic and consistent that way; a power loss (not a process crash: the page cache
survives that) can only undo the last commit, which the raft log then replays, as etcd's WAL
replays what its backend had not yet committed. That saves one fdatasync per turn of the node
loop. Its price is a margin: the raft log may only drop entries that the commit *before* the
last one applied (server/node_loop.py, ``_maybe_compact_log``), and opening or closing the
environment syncs it, so whatever a restart finds applied is durable before anything relies on it.

A lone client's turns may also leave the write transaction open and commit it later, after
their answers (storage/deferred.py): every read of the store, copies included, first settles it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lmdb

from pyetcd import failpoints

from .deferred import DeferredCommit
from .progress import FileGrowth, Progress

# Bucket names, as etcd's bolt buckets.
KEY = b"key"          # revision -> mvccpb.KeyValue bytes
META = b"meta"        # consistent index, compaction revisions, current revision
LEASE = b"lease"      # lease id -> leasepb bytes
AUTH = b"auth"
AUTH_USERS = b"authUsers"
AUTH_ROLES = b"authRoles"
MEMBERS = b"members"
MEMBERS_REMOVED = b"members_removed"  # ids of removed members: their messages are refused
ALARM = b"alarm"
BUCKETS = (KEY, META, LEASE, AUTH, AUTH_USERS, AUTH_ROLES, MEMBERS, MEMBERS_REMOVED, ALARM)

DEFAULT_QUOTA = 2 * 1024 * 1024 * 1024  # etcd's default --quota-backend-bytes
# The LMDB map is a reservation of address space, not of disk: make it generous so a quota
# (which we enforce ourselves, as etcd does, with the NOSPACE alarm) is reached first.
MIN_MAP_SIZE = 8 * 1024 * 1024 * 1024


@dataclass(frozen=True)
class SizeInfo:
    """What Maintenance.Status reports: bytes allocated on disk and bytes in use."""

    db_size: int
    db_size_in_use: int


class Backend:
    """The LMDB environment and its buckets."""

    def __init__(self, path: Path, quota_bytes: int = DEFAULT_QUOTA) -> None:
        self.path = path
        self.map_size = max(MIN_MAP_SIZE, quota_bytes * 2)
        path.mkdir(parents=True, exist_ok=True)
        self.deferred = DeferredCommit()
        self._open()

    def _open(self) -> None:
        self.env = lmdb.open(
            str(self.path), map_size=self.map_size, max_dbs=len(BUCKETS) + 2,
            subdir=True, sync=True, metasync=False, readahead=False, max_readers=1024,
        )
        self.env.sync(True)  # what a restart found applied is durable before compaction trusts it
        self.dbs = {name: self.env.open_db(name) for name in BUCKETS}
        self.refresh_size()

    def refresh_size(self) -> None:
        """Note the high-water mark after a commit (every page ever allocated, free ones too):
        an upper bound of what is in use that a quota check per request can read for nothing."""
        self.high_water = (self.env.info()["last_pgno"] + 1) * self.env.stat()["psize"]

    def bytes_in_use(self) -> int:
        """The pages the buckets hold now: the file less its free pages, as etcd's in-use size.
        (LMDB's copy-on-write leaves the high-water mark well above this: an empty store holds
        6 pages but has touched 15.)"""
        stat = self.env.stat()
        pages = 2 + stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]  # 2 meta pages
        with self.read() as txn:
            for db in self.dbs.values():
                st = txn.stat(db)
                pages += st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
        return int(pages * stat["psize"])

    def db(self, name: bytes) -> lmdb._Database:
        """A bucket's handle. Look it up at use: defragmentation reopens the environment."""
        return self.dbs[name]

    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction]:
        """A consistent read-only snapshot of the whole environment."""
        self.deferred.settle()
        txn = self.env.begin(write=False, buffers=False)
        try:
            yield txn
        finally:
            txn.abort()

    def begin_write(self) -> lmdb.Transaction:
        """Start the (single) write transaction; the caller commits or aborts it."""
        self.deferred.settle()
        return self.env.begin(write=True)

    def sizes(self) -> SizeInfo:
        data_file = self.path / "data.mdb"
        on_disk = data_file.stat().st_size if data_file.exists() else 0
        return SizeInfo(db_size=max(on_disk, self.high_water), db_size_in_use=self.bytes_in_use())

    def copy_to(self, dest: Path, compact: bool = True) -> None:
        """Write a consistent copy of the environment (a snapshot, or defragmentation)."""
        dest.mkdir(parents=True, exist_ok=True)
        self.deferred.settle()
        self.env.copy(str(dest), compact=compact)

    def snapshot_to(self, dest: Path) -> None:
        """A consistent, compact copy of the whole environment into file ``dest`` (a backup)."""
        self.deferred.settle()
        with dest.open("wb") as f:
            self.env.copyfd(f.fileno(), compact=True)

    def defrag_copy(self, progress: Progress | None = None) -> Path:
        """Write a compact copy beside the live file (runs while the member keeps serving reads).

        With ``progress``, the copy's growth is logged every few seconds while LMDB writes it."""
        self.deferred.settle()
        tmp = self.path / "defrag.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        if progress is None:
            self.env.copy(str(tmp), compact=True)
        else:
            with FileGrowth(progress, tmp / "data.mdb"):
                self.env.copy(str(tmp), compact=True)
        failpoints.hit("defrag.after_copy")
        fd = os.open(tmp / "data.mdb", os.O_RDONLY)
        try:
            os.fsync(fd)  # durable before it replaces the live file
        finally:
            os.close(fd)
        return tmp

    def defrag_swap(self, tmp: Path) -> None:
        """Replace the live file with the compact copy and reopen. No transaction may be open."""
        failpoints.hit("defrag.before_swap")
        self.replace_with(tmp / "data.mdb")
        failpoints.hit("defrag.after_swap")
        shutil.rmtree(tmp, ignore_errors=True)

    def replace_with(self, data_file: Path) -> None:
        """Make ``data_file`` (a whole environment in one file: a compact copy, or a leader's
        snapshot) the live store, durably, and reopen. No transaction may be open."""
        self.deferred.settle()
        self.env.close()
        os.replace(data_file, self.path / "data.mdb")
        self.fsync_dir()
        self._open()

    def close(self) -> None:
        self.deferred.settle()
        self.env.sync(True)  # the last commit's meta page, not flushed by its own commit
        self.env.close()

    def fsync_dir(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
