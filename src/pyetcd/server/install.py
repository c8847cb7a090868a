"""Snapshots between members: the leader sends its whole store to a follower that needs
entries it has compacted away, and the follower installs it.

Sending: a compact copy of the store is taken in a worker thread (LMDB copies from a read
transaction while writes go on); the raft snapshot metadata is read from the copy itself
(the applied index and term stored with the data, the member list as the configuration), so
the data and its index always agree, as etcd's merged snapshot message does.

Receiving: the transport writes the file as ``incoming-<index>.mdb`` beside the store and
checks its SHA-256 before the core sees the message. Installing: the node loop makes the raft
side durable, then the file replaces the store, and every subsystem re-reads it. Should the
member crash in between, ``finish_interrupted_install`` completes the swap at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import lmdb

from pyetcd.raft import Message, Snapshot, SnapshotMetadata
from pyetcd.storage.backend import MEMBERS, META
from pyetcd.storage.raftlog import RaftLog

from .membership import conf_state_of, read_members
from .ports import PeerSender
from .subsystems import META_APPLIED, META_APPLIED_TERM, Subsystems

log = logging.getLogger("pyetcd.server")
_U64 = struct.Struct(">Q")


def incoming_path(snap_dir: Path, index: int) -> Path:
    return snap_dir / f"incoming-{index:016x}.mdb"


def applied_in_store(data_file: Path) -> SnapshotMetadata:
    """The applied index, term and membership recorded inside a store file (a copy)."""
    env = lmdb.open(str(data_file), subdir=False, readonly=True, lock=False, max_dbs=16)
    try:
        meta_db = env.open_db(META, create=False)
        members_db = env.open_db(MEMBERS, create=False)
        with env.begin(buffers=False) as txn:
            raw = txn.get(META_APPLIED, db=meta_db)
            raw_term = txn.get(META_APPLIED_TERM, db=meta_db)
            records = read_members(txn, members_db)
    finally:
        env.close()
    index = _U64.unpack(bytes(raw))[0] if raw else 0
    term = _U64.unpack(bytes(raw_term))[0] if raw_term else 0
    return SnapshotMetadata(index, term, conf_state_of(records))


def finish_interrupted_install(snap_dir: Path, raftlog: RaftLog) -> None:
    """At start: the raft log says a snapshot was installed; make sure the store is that one."""
    index = raftlog.snapshot().metadata.index
    pending = incoming_path(snap_dir, index)
    data = snap_dir / "data.mdb"
    if index and pending.exists() and (not data.exists() or applied_in_store(data).index < index):
        log.warning("finishing the install of snapshot %d that a restart interrupted", index)
        snap_dir.mkdir(parents=True, exist_ok=True)
        pending.replace(data)
    for stale in snap_dir.glob("incoming-*.mdb"):
        stale.unlink(missing_ok=True)


class SnapshotInstaller:
    def __init__(self, parts: Subsystems) -> None:
        self.parts = parts
        self._sending: set[asyncio.Task[None]] = set()
        self.installed = 0  # snapshots received and installed (etcd's snapshot receive count)
        self.sent = 0

    @property
    def snap_dir(self) -> Path:
        return self.parts.backend.path

    def receive_path(self, index: int) -> Path:
        """Where the transport writes the store of a snapshot at ``index``."""
        return incoming_path(self.snap_dir, index)

    def install(self, index: int) -> None:
        """Event loop, no read open (as defragmentation's swap): the leader's store becomes ours."""
        path = incoming_path(self.snap_dir, index)
        if not path.exists():
            raise RuntimeError(f"snapshot {index} was accepted but its store file {path} is missing")
        self.parts.backend.replace_with(path)
        self.parts.reload()
        self.installed += 1

    # ---- the leader's side -----------------------------------------------------------
    def send(self, m: Message, peers: PeerSender, report: Callable[[int, bool], None]) -> None:
        task = asyncio.get_running_loop().create_task(self._send(m, peers, report))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, m: Message, peers: PeerSender, report: Callable[[int, bool], None]) -> None:
        loop = asyncio.get_running_loop()
        tmp = Path(tempfile.mkdtemp(prefix="snapshot-send-", dir=self.snap_dir.parent))
        store = tmp / "store.mdb"
        try:
            meta = await loop.run_in_executor(None, self._copy, store)
            msg = replace(m, snapshot=Snapshot(b"", meta))
            log.info("sending snapshot at index %d (%d bytes) to %x", meta.index, store.stat().st_size, m.to)
            done: asyncio.Future[bool] = loop.create_future()
            peers.send_snapshot(msg, store, lambda ok: _set(done, ok))
            ok = await done
        except Exception:
            log.warning("sending a snapshot to %x failed", m.to, exc_info=True)
            ok = False
        finally:
            store.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                tmp.rmdir()
        log.info("snapshot to %x %s", m.to, "sent" if ok else "failed; raft will try again")
        self.sent += ok
        report(m.to, not ok)

    def _copy(self, store: Path) -> SnapshotMetadata:
        self.parts.backend.snapshot_to(store)
        return applied_in_store(store)

    async def stop(self) -> None:
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)


def _set(fut: asyncio.Future[bool], ok: bool) -> None:
    if not fut.done():
        fut.set_result(ok)
