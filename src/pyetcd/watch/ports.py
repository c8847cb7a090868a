"""What the watch modules need from each other, as Protocols, so that none imports another
back: a watcher's stream (``Sink``), the hub as a stream sees it (``Registry``) and as the
catch-up rounds see it (``Parking``). Watchers are typed ``Any`` here for the same reason."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from pyetcd.mvcc import KVStore
from pyetcd.mvcc.store import Change


class Sink(Protocol):
    """Where a watcher's responses go (``stream.WatchStream``)."""

    victims: set[Any]

    def deliver(self, w: Any, rev: int, events: list[Change]) -> bool: ...

    def compacted(self, w: Any, compact_rev: int) -> None: ...

    def on_synced(self) -> None: ...


class Registry(Protocol):
    """The hub as a stream uses it (``hub.WatchHub``)."""

    kv: KVStore
    streams: set[Any]

    def add(self, w: Any, start_rev: int) -> None: ...

    def remove(self, w: Any) -> None: ...

    def resume(self, watchers: Iterable[Any]) -> None: ...


class Parking(Protocol):
    """The hub as a catch-up round uses it."""

    unsynced: set[Any]

    def mark_synced(self, w: Any) -> None: ...

    def park(self, w: Any, next_rev: int) -> None: ...
