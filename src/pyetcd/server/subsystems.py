"""Every subsystem of one member, as ``compose`` built them: what the node loop, the installer
and the facade share."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from pyetcd.auth.store import AuthStore
from pyetcd.mvcc import KVStore
from pyetcd.mvcc.store import Change
from pyetcd.storage.backend import META, Backend
from pyetcd.storage.raftlog import RaftLog
from pyetcd.watch import WatchHub

from .alarms import Alarms
from .apply import Applier
from .changefeed import ChangeFeed
from .config import ServerConfig
from .leases import ServerLeases
from .membership import Membership

_U64 = struct.Struct(">Q")
META_APPLIED = b"consistent_index"
META_APPLIED_TERM = b"term"


@dataclass
class Subsystems:
    cfg: ServerConfig
    backend: Backend
    raftlog: RaftLog
    kv: KVStore
    members: Membership
    applier: Applier
    alarms: Alarms
    auth: AuthStore
    leases: ServerLeases
    hub: WatchHub
    feed: ChangeFeed
    change_listeners: list[Callable[[list[Change]], None]] = field(default_factory=list)

    @property
    def applied(self) -> tuple[int, int]:
        """The index and term of the last entry the store applied durably."""
        return read_applied(self.backend, self.raftlog)

    def reload(self) -> None:
        """Every subsystem re-reads the store (its file was replaced by a leader's snapshot)."""
        self.kv.reload()
        self.members.reload()
        self.alarms.reload()
        self.auth.reload()
        self.leases.reload()

    def close(self) -> None:
        self.backend.close()
        self.raftlog.close()


def read_applied(backend: Backend, raftlog: RaftLog) -> tuple[int, int]:
    with backend.read() as txn:
        raw = txn.get(META_APPLIED, db=backend.db(META))
        raw_term = txn.get(META_APPLIED_TERM, db=backend.db(META))
    index = _U64.unpack(bytes(raw))[0] if raw is not None else 0
    term = _U64.unpack(bytes(raw_term))[0] if raw_term is not None else 0
    snap = raftlog.snapshot().metadata
    if snap.index > index:
        return snap.index, snap.term
    return index, term
