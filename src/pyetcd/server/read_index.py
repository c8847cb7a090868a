"""Linearizable reads: ReadIndex requests batched per node-loop turn, then applied-index waiters.

One round is in flight at a time; every read that arrives meanwhile joins the next round, as
etcd's linearizableReadLoop batches them (each round costs the leader a heartbeat to every
follower, so a round per turn under load would flood the peers). A round's context is a
request id unique across members (the leader tracks rounds by context: two followers must
never send the same one). Once the core answers with a read state, each read waits until this
member has applied that index. A round lost with a leader change, or unanswered for half a
second (etcd's readIndexRetryTime), is asked again; a read nobody answers fails by its deadline
(etcd's "request timed out").
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

from pyetcd.raft import ReadState

_CTX = struct.Struct(">Q")
RETRY_AFTER = 0.5  # seconds; etcd's readIndexRetryTime


class ReadIndex:
    def __init__(self, next_id: Callable[[], int]) -> None:
        self._next_id = next_id
        self._new: list[asyncio.Future[None]] = []
        self._asked: dict[bytes, list[asyncio.Future[None]]] = {}
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._asked_at = 0.0

    def add(self, fut: asyncio.Future[None]) -> None:
        self._new.append(fut)

    def next_round(self, now: float) -> bytes | None:
        """The context of a new ReadIndex round for every read waiting to be asked, if no round
        is in flight (or the one in flight is overdue: it is asked again, with the new reads)."""
        if self._asked:
            if now - self._asked_at < RETRY_AFTER:
                return None
            self.retry_all()
        waiting = [f for f in self._new if not f.done()]
        self._new = []
        if not waiting:
            return None
        ctx = _CTX.pack(self._next_id())
        self._asked[ctx] = waiting
        self._asked_at = now
        return ctx

    def retry_all(self) -> None:
        """The leader changed: rounds in flight may never be answered, so ask again."""
        for futs in self._asked.values():
            self._new.extend(f for f in futs if not f.done())
        self._asked.clear()

    def answered(self, read_states: list[ReadState], applied: int) -> None:
        for rs in read_states:
            for fut in self._asked.pop(rs.request_ctx, ()):
                self._applied_waiters.append((rs.index, fut))
        self.applied(applied)

    def applied(self, applied: int) -> None:
        if not self._applied_waiters:
            return
        still = []
        for index, fut in self._applied_waiters:
            if fut.done():
                continue
            if index <= applied:
                fut.set_result(None)
            else:
                still.append((index, fut))
        self._applied_waiters = still

    @property
    def ready_for_round(self) -> bool:
        """Reads are waiting and no round is in flight: the node loop should start one now."""
        return bool(self._new) and not self._asked
