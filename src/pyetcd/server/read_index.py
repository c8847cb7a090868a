"""Linearizable reads: ReadIndex requests batched per node-loop turn, then applied-index waiters.

One round is in flight at a time; every read that arrives meanwhile joins the next round, as
etcd's linearizableReadLoop batches them (each round costs the leader a heartbeat to every
follower, so a round per turn under load would flood the peers). A round's context is a
request id unique across members (the leader tracks rounds by context: two followers must
never send the same one). Once the core answers with a read state, each read waits until this
member has applied that index. A round lost with a leader change, or unanswered for half a
second (etcd's readIndexRetryTime), is asked again; a read nobody answers fails by its deadline
(etcd's "request timed out").

While reads overlap, the next round waits for company. A round is dear here: on three members
it costs the cluster about half a millisecond of CPU (the leader's heartbeats and the followers'
answers, each a gRPC message handled in Python), and reads arriving one at a time at a leader
made rounds of 1.4 reads on average at 100 clients, the leader's event loop busy with rounds.
So when at least ``MIN_COMPANY`` reads were in progress together lately (the company), a round
starts once half the company is waiting for it, or ``HOLD_MAX`` after the previous round
started, whichever comes first. A lone client's reads never overlap and never wait. (A hold by
time alone was tried first, 0.25 ms per read of company: it cost 4 clients 40 % in some runs,
uvloop's timers having millisecond resolution.) Same-run A/B with a 4 ms cap, three members on
2 cores, etcd's benchmark tool, linearizable range, medians of 3 rounds, reads/s:
clients at the leader: 1 and 2 clients within 1 %, 4 clients +31 %, 10 clients 2.1x, 100 clients
2.5x (CPU per read -66 %); at a follower: 1 client the same, 10 clients +13 %, 100 clients +14 %;
spread over the members: 16 clients +28 %, 100 clients +28 %. ``PYETCD_READ_HOLD_MS`` sets the
hold's cap (0: never hold; for A/B runs in bench/kv.py).
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Callable

from pyetcd.raft import ReadState

_CTX = struct.Struct(">Q")
RETRY_AFTER = 0.5  # seconds; etcd's readIndexRetryTime
MIN_COMPANY = 3  # reads in progress together lately for rounds to wait for company
# seconds; same-run A/B against 4 ms, reads/s: at the leader 4 clients +7 %, 10 clients -2 %,
# 100 clients +8 %; at a follower 10 clients +3 %; spread over the members, 100 clients +7 %
# (2 ms: -6 % there, and -22 % at the leader's 100 clients against 4 ms)
HOLD_MAX = float(os.environ.get("PYETCD_READ_HOLD_MS", "8")) / 1000
OVERLAP_WINDOW = 0.1  # seconds: the company is the most reads seen together in this window or the last


class ReadIndex:
    def __init__(self, next_id: Callable[[], int]) -> None:
        self._next_id = next_id
        self._new: list[asyncio.Future[None]] = []
        self._asked: dict[bytes, list[asyncio.Future[None]]] = {}
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._asked_at = float("-inf")  # when the last round started
        self._reading = 0  # reads added and not answered yet
        self._peak = self._last_peak = 0  # the most in progress together, this window and the last
        self._window_at = float("-inf")

    def add(self, fut: asyncio.Future[None]) -> None:
        self._new.append(fut)
        self._reading += 1
        self._peak = max(self._peak, self._reading)
        fut.add_done_callback(self._answered_one)

    def _answered_one(self, fut: asyncio.Future[None]) -> None:
        self._reading -= 1

    def _company(self, now: float) -> int:
        if now - self._window_at >= OVERLAP_WINDOW:
            self._last_peak, self._peak, self._window_at = self._peak, self._reading, now
        return max(self._peak, self._last_peak)

    def held_until(self, now: float) -> float:
        """When the next round may start, if reads are waiting for it and it waits for company
        (the module's docstring); 0.0 when it may start now."""
        if not self._new or self._asked:
            return 0.0
        company = self._company(now)
        if company < MIN_COMPANY or 2 * len(self._new) >= company:
            return 0.0
        until = self._asked_at + HOLD_MAX
        return until if until > now else 0.0

    def next_round(self, now: float) -> bytes | None:
        """The context of a new ReadIndex round for every read waiting to be asked, if no round
        is in flight (or the one in flight is overdue: it is asked again, with the new reads)
        and the round does not wait for company."""
        if self._asked:
            if now - self._asked_at < RETRY_AFTER:
                return None
            self.retry_all()
        if now < self.held_until(now):
            return None
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

    def ready_for_round(self, now: float) -> bool:
        """Reads are waiting, no round is in flight and none is held: the node loop should start one now."""
        return bool(self._new) and not self._asked and now >= self.held_until(now)
