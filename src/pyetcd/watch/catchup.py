"""Catching UNSYNCED watchers up from the MVCC history, in bounded rounds (etcd's syncWatchers).

One round reads at most ``max_revs`` revisions (and about ``max_events`` changes) after the
lowest revision any unsynced watcher needs, hands each watcher its events in one response,
and moves the watchers that reached the current revision to SYNCED. A round runs on the event
loop without awaiting, so no batch can be published between the history read and the move
to SYNCED: nothing is missed and nothing is sent twice. Watchers whose start revision fell
below the compaction point get etcd's compacted response instead, judged also by the compaction
point of the snapshot the round read (a compaction the apply thread committed but the event loop
has not published yet has already deleted its rows).
"""

from __future__ import annotations

from pyetcd.mvcc import KVStore
from pyetcd.mvcc.store import Change

from .group import WatcherGroup
from .ports import Parking
from .watcher import State, Watcher


class CatchUp:
    def __init__(self, kv: KVStore, max_revs: int = 1000, max_events: int = 10_000) -> None:
        self.kv = kv
        self.max_revs = max_revs  # etcd's watchBatchMaxRevs
        self.max_events = max_events

    def round(self, hub: Parking) -> None:
        cur, compact = self.kv.current_rev, self.kv.compact_rev
        group = WatcherGroup()
        lo = 0
        for w in list(hub.unsynced):
            if w.min_rev < compact:
                self._compacted(hub, w, compact)
            elif w.min_rev > cur:
                hub.mark_synced(w)
            else:
                group.add(w)
                lo = w.min_rev if not lo else min(lo, w.min_rev)
        if not group.size:
            return
        hi = min(cur, lo + self.max_revs - 1)
        changes, hi, read_compact = self._read(lo, hi)
        if read_compact > compact:  # committed by the apply thread, not yet published: rows already gone
            for w in list(group):
                if w.min_rev < read_compact:
                    group.remove(w)
                    self._compacted(hub, w, read_compact)
        per: dict[Watcher, list[Change]] = {}
        for ch in changes:
            for ws in group.match(ch.key):
                for w in ws:
                    if ch.rev >= w.min_rev:
                        per.setdefault(w, []).append(ch)
        for w in list(group):
            if w.min_rev > hi:
                continue  # needs nothing this round covers
            evs = per.get(w)
            if evs and not w.stream.deliver(w, cur, evs):
                hub.park(w, w.min_rev)
                continue
            w.min_rev = hi + 1
            if hi >= cur:
                hub.mark_synced(w)

    @staticmethod
    def _compacted(hub: Parking, w: Watcher, compact: int) -> None:
        hub.unsynced.discard(w)
        w.state = State.COMPACTED
        w.stream.compacted(w, compact)

    def _read(self, lo: int, hi: int) -> tuple[list[Change], int, int]:
        """Changes of revisions lo..hi, cut at a whole revision when there are too many, and the
        compaction point of the snapshot they were read from (see ``KVStore.history_and_compaction``)."""
        changes, compact = self.kv.history_and_compaction(max(lo, 1), hi, limit=self.max_events + 1)
        if len(changes) <= self.max_events:
            return changes, hi, compact
        last = changes[-1].rev
        if changes[0].rev == last:  # one huge txn: it goes out whole, never split
            whole, later = self.kv.history_and_compaction(last, last)
            return whole, last, max(compact, later)
        return [c for c in changes if c.rev < last], last - 1, compact
