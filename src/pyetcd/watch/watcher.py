"""One watcher: a key range, the next revision it needs, and where its events go.

A watcher is in exactly one state at a time (etcd's model): SYNCED watchers get events at
apply time; UNSYNCED ones are caught up from the MVCC history; a VICTIM's stream was too full
to take more, so it is parked (holding no events, only ``min_rev``) until the stream drains.
"""

from __future__ import annotations

import enum

from pyetcd.api import kv_pb2, rpc_pb2
from pyetcd.mvcc.store import Change

from .ports import Sink

PUT = kv_pb2.Event.PUT
DELETE = kv_pb2.Event.DELETE
NOPUT = rpc_pb2.WatchCreateRequest.NOPUT
NODELETE = rpc_pb2.WatchCreateRequest.NODELETE


class State(enum.Enum):
    SYNCED = "synced"
    UNSYNCED = "unsynced"
    VICTIM = "victim"
    COMPACTED = "compacted"  # canceled by the server; its id stays taken, as in etcd
    CANCELED = "canceled"


def prefix_end(key: bytes) -> bytes:
    """The range end of a prefix watch (etcd's GetPrefixRangeEnd); b"" means no upper bound."""
    k = bytearray(key)
    while k and k[-1] == 0xFF:
        k.pop()
    if not k:
        return b""
    k[-1] += 1
    return bytes(k)


class Watcher:
    """``end`` is None for a single key, b"" for every key >= ``key``, else the exclusive end."""

    __slots__ = ("end", "fragment", "id", "key", "min_rev", "no_delete", "no_put", "pending", "prev_kv", "progress",
                 "progress_idle", "state", "stream")

    def __init__(self, stream: Sink, wid: int, key: bytes, end: bytes | None, *, filters: tuple[int, ...] = (),
                 prev_kv: bool = False, progress: bool = False, fragment: bool = False) -> None:
        self.stream = stream
        self.id = wid
        self.key = key
        self.end = end
        self.min_rev = 0
        self.no_put = NOPUT in filters
        self.no_delete = NODELETE in filters
        self.prev_kv = prev_kv
        self.progress = progress
        self.progress_idle = True  # no events sent since the last progress tick
        self.fragment = fragment
        self.state = State.UNSYNCED
        self.pending: PendingResponse | None = None  # its event response still in the stream's queue

    def matches(self, key: bytes) -> bool:
        if self.end is None:
            return key == self.key
        return self.key <= key and (not self.end or key < self.end)

    def wants(self, event_type: int) -> bool:
        """False when a NOPUT / NODELETE filter drops events of this type."""
        return not (self.no_put if event_type == PUT else self.no_delete)

    def __repr__(self) -> str:
        return f"Watcher(id={self.id}, key={self.key!r}, end={self.end!r}, min_rev={self.min_rev}, {self.state.value})"


class PendingResponse:
    """A watcher's queued event response. While it waits, later events of the same watcher join
    it (until a control response is queued after it), as etcd merges a lagging watcher's events."""

    __slots__ = ("epoch", "events", "owned", "rev", "size", "watcher")

    def __init__(self, w: Watcher, rev: int, events: list[Change], size: int, epoch: int) -> None:
        self.watcher, self.rev, self.events, self.size, self.epoch = w, rev, events, size, epoch
        self.owned = False  # events may be a list shared with other watchers until copied
