"""One Watch gRPC stream's server side: its watchers, their ids, and one ordered send queue.

Every response of the stream (created, canceled, events, progress, compacted) goes through
one FIFO queue, so a watcher's created response always precedes its events and a progress
response never overtakes events it vouches for.

Event responses are bounded (count and bytes): when the client stops reading, ``deliver``
refuses and the hub parks the watcher; once the queue has drained to half, the parked
watchers resume from history. While a watcher's event response waits in the queue, its next
events join it (a lagging watcher gets several revisions in one response, as etcd's catch-up
does), which saves gRPC's per-message cost exactly when the client falls behind; with no
backlog every revision is its own response, as etcd sends to synced watchers. Control
responses are few per client request, and the request reader waits while too many are
queued, so the queue is bounded either way.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable

from pyetcd.api import rpc_pb2
from pyetcd.mvcc.store import Change

from . import encode
from .ports import Registry
from .watcher import PendingResponse, State, Watcher

AUTO_WATCH_ID = 0  # clientv3.AutoWatchID: the server picks
INVALID_WATCH_ID = -1  # clientv3.InvalidWatchID
ERR_EMPTY_RANGE = "mvcc: watcher range is empty"
ERR_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"
MAX_CONTROL_QUEUED = 256

MERGE_MAX_BYTES = 256 * 1024  # a backlogged watcher's merged response stays below this


class WatchStream:
    def __init__(self, hub: Registry, header: Callable[[int], bytes], *, max_response_bytes: int,
                 progress_interval: float, max_queued: int = 1024, max_queued_bytes: int = 4 << 20) -> None:
        self.hub = hub
        self._header = header
        self.max_response_bytes = max_response_bytes
        self.progress_interval = progress_interval
        self.max_queued = max_queued
        self.max_queued_bytes = max_queued_bytes
        self.watchers: dict[int, Watcher] = {}
        self.victims: set[Watcher] = set()
        self.closed = False
        self._next_id = 0
        self._queue: deque[bytes | PendingResponse] = deque()
        self._epoch = 0  # bumped by every control response: events never merge across one
        self._queued = 0  # event responses in the queue
        self._queued_bytes = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._deferred_progress = False
        self._progress_task: asyncio.Task[None] | None = None
        hub.streams.add(self)

    @property
    def queued(self) -> tuple[int, int]:
        """Event responses waiting to be sent, and the bytes of their events."""
        return self._queued, self._queued_bytes

    # ---- requests ---------------------------------------------------------------------------------
    def handle(self, req: rpc_pb2.WatchRequest) -> None:
        kind = req.WhichOneof("request_union")
        if kind == "create_request":
            self.create(req.create_request)
        elif kind == "cancel_request":
            self.cancel(req.cancel_request.watch_id)
        elif kind == "progress_request":
            self.request_progress()
        # anything else is ignored, as etcd does

    def create(self, c: rpc_pb2.WatchCreateRequest) -> None:
        key = c.key or b"\x00"  # \0 is the smallest key
        end = None if not c.range_end else (b"" if c.range_end == b"\x00" else c.range_end)
        rev = self.hub.kv.current_rev
        err: str | None = ERR_EMPTY_RANGE
        wid = INVALID_WATCH_ID
        if not ((end and key >= end) or self.closed):
            wid, err = self._pick_id(c.watch_id)
        self._push(encode.response(self._header(rev), wid, created=True, canceled=err is not None,
                                   cancel_reason=err or ""))
        if err is not None:
            return
        w = Watcher(self, wid, key, end, filters=tuple(c.filters), prev_kv=c.prev_kv, progress=c.progress_notify,
                    fragment=c.fragment)
        self.watchers[wid] = w
        self.hub.add(w, c.start_revision or rev + 1)
        if w.progress and self._progress_task is None and self.progress_interval > 0:
            self._progress_task = asyncio.get_running_loop().create_task(self._progress_loop())

    def refuse(self, reason: str) -> None:
        """Answer a create request that may not be served (auth) with etcd's canceled reply."""
        self._push(encode.response(self._header(self.hub.kv.current_rev), INVALID_WATCH_ID, created=True,
                                   canceled=True, cancel_reason=reason))

    def _pick_id(self, requested: int) -> tuple[int, str | None]:
        if requested != AUTO_WATCH_ID:
            if requested in self.watchers:
                return INVALID_WATCH_ID, ERR_DUPLICATE_ID
            return requested, None
        while self._next_id in self.watchers:
            self._next_id += 1
        wid = self._next_id
        self._next_id += 1
        return wid, None

    def cancel(self, wid: int) -> None:
        w = self.watchers.pop(wid, None)
        if w is None or self.closed:
            return  # etcd answers nothing for an unknown id
        self.hub.remove(w)
        self.victims.discard(w)
        self._push(encode.response(self._header(self.hub.kv.current_rev), wid, canceled=True))

    def request_progress(self) -> None:
        """etcd 3.5: answered (watch id -1, the current revision) once every watcher is synced."""
        if self._all_synced():
            self._push(encode.response(self._header(self.hub.kv.current_rev), INVALID_WATCH_ID))
        else:
            self._deferred_progress = True

    def _all_synced(self) -> bool:
        return all(w.state in (State.SYNCED, State.COMPACTED) for w in self.watchers.values())

    def on_synced(self) -> None:
        if self._deferred_progress and self._all_synced():
            self._deferred_progress = False
            self.request_progress()

    async def _progress_loop(self) -> None:
        """etcd's progress ticker: a synced watcher that got no events in a period hears the revision."""
        while not self.closed:
            interval = self.progress_interval
            await asyncio.sleep(interval + random.uniform(0, interval / 10))
            rev = self.hub.kv.current_rev
            for w in self.watchers.values():
                if not w.progress:
                    continue
                if w.progress_idle and w.state == State.SYNCED and self._queued < self.max_queued:
                    self._push(encode.response(self._header(rev), w.id))
                w.progress_idle = True

    async def wait_room(self) -> None:
        """Back-pressure on requests: wait while the client leaves many control responses unread."""
        while len(self._queue) - self._queued > MAX_CONTROL_QUEUED and not self.closed:
            self._room.clear()
            await self._room.wait()

    # ---- from the hub -----------------------------------------------------------------------------
    def deliver(self, w: Watcher, rev: int, events: list[Change]) -> bool:
        """Queue ``w``'s events with header revision ``rev``; False (nothing queued) when full."""
        if w.no_put or w.no_delete:
            events = [e for e in events if w.wants(e.type)]
            if not events:
                return True
        if self.closed:
            return True
        if self._queued_bytes >= self.max_queued_bytes:
            return False
        size = sum(len(e.kv) for e in events)
        p = w.pending
        if p is not None and p.epoch == self._epoch and p.size < MERGE_MAX_BYTES:
            if not p.owned:
                p.events, p.owned = list(p.events), True
            p.events.extend(events)
            p.rev, p.size = rev, p.size + size
            self._queued_bytes += size
            return True
        if self._queued >= self.max_queued:
            return False
        self._queued_bytes += size
        w.pending = PendingResponse(w, rev, events, size, self._epoch)
        self._queue.append(w.pending)
        self._queued += 1
        self._ready.set()
        return True

    def compacted(self, w: Watcher, compact_rev: int) -> None:
        """etcd's answer to a watcher whose start revision was compacted: header revision 0."""
        self._push(encode.response(self._header(0), w.id, canceled=True, compact_revision=compact_rev))

    def _push(self, msg: bytes) -> None:
        self._epoch += 1
        self._queue.append(msg)
        self._ready.set()

    # ---- to the client ----------------------------------------------------------------------------
    async def next_messages(self) -> list[bytes] | None:
        """The next response(s) to send, in order; None once the stream is closed."""
        while not self._queue:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        item = self._queue.popleft()
        if isinstance(item, bytes):
            self._room.set()
            return [item]
        w = item.watcher
        if w.pending is item:
            w.pending = None
        self._queued -= 1
        self._queued_bytes -= item.size
        w.progress_idle = False
        if self.victims and self._queued <= self.max_queued // 2 and self._queued_bytes <= self.max_queued_bytes // 2:
            victims, self.victims = self.victims, set()
            self.hub.resume(victims)
        return self._encode(w, item.rev, item.events)

    def _encode(self, w: Watcher, rev: int, events: list[Change]) -> list[bytes]:
        get_at = self.hub.kv.get_at
        if w.prev_kv:
            evs = [encode.event(e.type, e.kv, get_at(e.key, e.rev - 1)) for e in events]
        else:
            evs = [encode.event(e.type, e.kv) for e in events]
        if w.fragment:
            return encode.fragments(self._header(rev), w.id, evs, self.max_response_bytes)
        return [encode.response(self._header(rev), w.id, events=b"".join(evs))]

    def close(self) -> None:
        """The stream or its connection went away: cancel and free every watcher."""
        if self.closed:
            return
        self.closed = True
        self.hub.streams.discard(self)
        for w in self.watchers.values():
            self.hub.remove(w)
        self.watchers.clear()
        self.victims.clear()
        self._queue.clear()
        self._queued = self._queued_bytes = 0
        self._ready.set()
        self._room.set()
        if self._progress_task is not None:
            self._progress_task.cancel()
            self._progress_task = None
