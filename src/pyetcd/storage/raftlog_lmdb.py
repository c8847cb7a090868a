"""Reading the raft log as pyetcd kept it before its write-ahead log: an LMDB environment.

Only used to convert such a data dir once, when a member of this version first opens it
(storage/raftlog.py); the layout here is frozen, whatever the WAL's becomes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import lmdb

from pyetcd.raft import ConfState, Entry, EntryType, HardState, SnapshotMetadata

_INDEX = struct.Struct(">Q")
_ENTRY_HEAD = struct.Struct(">QB")
_HARD_STATE = struct.Struct(">QQQ")
_FILES = ("data.mdb", "lock.mdb")


@dataclass
class LegacyLog:
    member_id: int = 0
    snapshot: SnapshotMetadata = field(default_factory=lambda: SnapshotMetadata(0, 0, ConfState()))
    applied_conf: ConfState | None = None
    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)


def _conf(raw: bytes) -> ConfState:
    d = json.loads(raw)
    return ConfState(voters=tuple(d["voters"]), learners=tuple(d["learners"]))


def is_lmdb_log(path: Path) -> bool:
    return (path / "data.mdb").exists()


def read_lmdb_log(path: Path) -> LegacyLog:
    out = LegacyLog()
    env = lmdb.open(str(path), max_dbs=4, subdir=True, readonly=True, lock=False)
    try:
        log_db, state_db = env.open_db(b"raftlog", create=False), env.open_db(b"raftstate", create=False)
        with env.begin(buffers=False) as txn:
            if (raw := txn.get(b"member_id", db=state_db)) is not None:
                out.member_id = _INDEX.unpack(raw)[0]
            if (raw := txn.get(b"snapshot", db=state_db)) is not None:
                d = json.loads(raw)
                out.snapshot = SnapshotMetadata(d["index"], d["term"], _conf(raw))
            if (raw := txn.get(b"confstate", db=state_db)) is not None:
                out.applied_conf = _conf(raw)
            if (raw := txn.get(b"hardstate", db=state_db)) is not None:
                out.hard_state = HardState(*_HARD_STATE.unpack(raw))
            for k, v in txn.cursor(db=log_db):
                index = _INDEX.unpack(k)[0]
                if index > out.snapshot.index:
                    term, kind = _ENTRY_HEAD.unpack_from(v)
                    etype = EntryType.CONF_CHANGE if kind == 1 else EntryType.NORMAL
                    out.entries.append(Entry(term=term, index=index, type=etype, data=v[_ENTRY_HEAD.size:]))
    finally:
        env.close()
    return out


def remove_lmdb_log(path: Path) -> None:
    for name in _FILES:
        (path / name).unlink(missing_ok=True)
