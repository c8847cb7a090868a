"""The watchable store: every watcher of a member, in etcd's synced / unsynced / victim groups.

``on_changes`` runs on the event loop when a durable batch is published: each revision's
events go to the SYNCED watchers that match, one response per watcher and revision, into the
watcher's stream queue. A stream whose queue is full takes nothing more: its watcher becomes a
VICTIM holding only the revision it needs next, so apply never waits and memory stays bounded.
When the stream drains, its victims become UNSYNCED and the catch-up task replays their missed
revisions from the MVCC history (LMDB), then returns them to SYNCED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from pyetcd import failpoints
from pyetcd.mvcc import KVStore
from pyetcd.mvcc.store import Change

from .catchup import CatchUp
from .group import WatcherGroup
from .watcher import State, Watcher

log = logging.getLogger("pyetcd.watch")


class WatchHub:
    def __init__(self, kv: KVStore) -> None:
        self.kv = kv
        self.synced = WatcherGroup()
        self.unsynced: set[Watcher] = set()
        self.victims = 0
        self.streams: set[Any] = set()  # open streams, for stats and tests
        self._catchup = CatchUp(kv)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def watcher_count(self) -> int:
        return len(self.synced) + len(self.unsynced) + self.victims

    # ---- membership ------------------------------------------------------------------------------
    def add(self, w: Watcher, start_rev: int) -> None:
        """Start ``w`` at ``start_rev`` (0: after the current revision; future: wait for it)."""
        cur = self.kv.current_rev
        if start_rev == 0 or start_rev > cur:
            w.min_rev = max(cur + 1, start_rev)
            w.state = State.SYNCED
            self.synced.add(w)
        else:
            w.min_rev = start_rev + failpoints.hit("bug.watch_resume_skip")  # deliberate bug (selftest): off by one
            self._make_unsynced(w)

    def remove(self, w: Watcher) -> None:
        if w.state == State.SYNCED:
            self.synced.remove(w)
        elif w.state == State.UNSYNCED:
            self.unsynced.discard(w)
        elif w.state == State.VICTIM:
            self.victims -= 1
        w.state = State.CANCELED

    def park(self, w: Watcher, next_rev: int) -> None:
        """``w``'s stream is full: keep only the revision it needs next (etcd's victim)."""
        if w.state == State.SYNCED:
            self.synced.remove(w)
        elif w.state == State.UNSYNCED:
            self.unsynced.discard(w)
        if w.state != State.VICTIM:
            self.victims += 1
            log.debug("watcher %d parked at revision %d: its stream's queue is full", w.id, next_rev)
        w.state = State.VICTIM
        w.min_rev = next_rev
        w.stream.victims.add(w)

    def resume(self, watchers: Iterable[Watcher]) -> None:
        """A stream drained: its victims catch up from history."""
        for w in watchers:
            if w.state == State.VICTIM:
                self.victims -= 1
                self._make_unsynced(w)

    def restore(self, seen_rev: int) -> None:
        """The key space was replaced (a snapshot from the leader). Synced watchers had every
        event up to ``seen_rev``, the revision before the swap: they re-check the new history
        after it (etcd's watchableStore.Restore), and a watcher whose next revision is still in
        the future simply returns to SYNCED."""
        watchers = list(self.synced)
        self.synced = WatcherGroup()
        for w in watchers:
            w.min_rev = max(w.min_rev, seen_rev + 1)
            self._make_unsynced(w)

    def _make_unsynced(self, w: Watcher) -> None:
        w.state = State.UNSYNCED
        self.unsynced.add(w)
        if self._wake is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._catchup_loop(), name="watch-catchup")
        self._wake.set()

    def mark_synced(self, w: Watcher) -> None:
        self.unsynced.discard(w)
        w.state = State.SYNCED
        self.synced.add(w)
        w.stream.on_synced()

    # ---- apply-time delivery ---------------------------------------------------------------------
    def on_changes(self, changes: list[Change]) -> None:
        """The change listener: a durable batch, in revision order."""
        if not self.synced.size:
            return
        i, n = 0, len(changes)
        while i < n:
            rev = changes[i].rev
            j = i + 1
            while j < n and changes[j].rev == rev:
                j += 1
            self._notify(rev, changes[i:j])
            i = j

    def _notify(self, rev: int, changes: list[Change]) -> None:
        if failpoints.hit("bug.drop_watch_event"):  # deliberate bug (selftest): a revision never sent
            return
        if len(changes) == 1:
            matched: Iterable[tuple[Watcher, list[Change]]] = [
                (w, changes) for ws in self.synced.match(changes[0].key) for w in ws if rev >= w.min_rev]
        else:
            per: dict[Watcher, list[Change]] = {}
            for ch in changes:
                for ws in self.synced.match(ch.key):
                    for w in ws:
                        if rev >= w.min_rev:
                            per.setdefault(w, []).append(ch)
            matched = per.items()
        for w, evs in matched:
            if not w.stream.deliver(w, rev, evs):
                self.park(w, rev)

    # ---- catch-up from history -------------------------------------------------------------------
    async def _catchup_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.unsynced:
                try:
                    self._catchup.round(self)
                except Exception:  # never let one bad round kill watching for everyone
                    log.exception("watch catch-up round failed")
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0)  # let apply and the streams run between rounds

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
