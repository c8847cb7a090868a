"""Watch: etcd's watchable store (synced / unsynced / victim watchers) and the per-stream state."""

from .hub import WatchHub
from .stream import WatchStream
from .watcher import State, Watcher

__all__ = ["State", "WatchHub", "WatchStream", "Watcher"]
