"""Regression (robustness seed 1010, 3 members, fault drop): a watcher catching up from a past
revision while a compaction past that revision was committed by the apply thread but not yet
published on the event loop got the history with the compacted revisions silently missing,
instead of etcd's compacted cancel. The store's rows are gone at the LMDB commit; ``compact_rev``
moves only at ``publish``, and a catch-up round can run in between (it ran on the event loop
while the apply thread committed the turn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyetcd.mvcc import KVStore
from pyetcd.mvcc.store import Change
from pyetcd.storage.backend import Backend
from pyetcd.watch.catchup import CatchUp
from pyetcd.watch.watcher import State, Watcher


class _Sink:
    def __init__(self) -> None:
        self.victims: set[Any] = set()
        self.delivered: list[tuple[int, list[int]]] = []
        self.compacted_at: list[int] = []

    def deliver(self, w: Any, rev: int, events: list[Change]) -> bool:
        self.delivered.append((rev, [c.rev for c in events]))
        return True

    def compacted(self, w: Any, compact_rev: int) -> None:
        self.compacted_at.append(compact_rev)

    def on_synced(self) -> None:
        pass


class _Hub:
    def __init__(self) -> None:
        self.unsynced: set[Any] = set()
        self.synced: set[Any] = set()

    def mark_synced(self, w: Any) -> None:
        self.unsynced.discard(w)
        self.synced.add(w)

    def park(self, w: Any, next_rev: int) -> None:
        raise AssertionError("nothing parks here")


def _store_with_puts(path: Path, n: int) -> KVStore:
    backend = Backend(path)
    store = KVStore(backend)
    txn = backend.begin_write()
    w = store.writer(txn)
    for i in range(n):
        t = w.begin()
        t.put(b"k", b"v%d" % i, 0)
        t.end()
    w.finish()
    txn.commit()
    store.publish(w)
    return store


def _catch_up(store: KVStore, from_rev: int) -> tuple[_Sink, _Hub, Watcher]:
    sink, hub = _Sink(), _Hub()
    w = Watcher(sink, 1, b"k", None)
    w.min_rev = from_rev
    hub.unsynced.add(w)
    CatchUp(store).round(hub)
    return sink, hub, w


def test_catch_up_across_a_committed_unpublished_compaction_is_canceled_as_compacted(tmp_path: Path) -> None:
    store = _store_with_puts(tmp_path / "db", 10)  # revisions 2..11, each superseding the last
    txn = store.backend.begin_write()
    w = store.writer(txn)
    w.compact(8)  # deletes revisions 2..7
    w.finish()
    txn.commit()  # the apply thread's commit; publish() has not run yet
    assert store.compact_rev < 8
    sink, hub, watcher = _catch_up(store, 3)
    assert sink.delivered == [], "events from a partly compacted history"
    assert sink.compacted_at == [8] and watcher.state is State.COMPACTED and not hub.unsynced


def test_catch_up_from_at_or_past_that_compaction_still_gets_every_event(tmp_path: Path) -> None:
    store = _store_with_puts(tmp_path / "db", 10)
    txn = store.backend.begin_write()
    w = store.writer(txn)
    w.compact(8)
    w.finish()
    txn.commit()
    sink, hub, watcher = _catch_up(store, 8)
    assert sink.delivered == [(11, [8, 9, 10, 11])] and sink.compacted_at == []
    assert watcher in hub.synced
