"""A set of watchers indexed by what they watch, so an event finds its watchers fast.

Single keys are a dict lookup. Prefix watches (the common range) are found by looking up the
event key's prefixes, only at the lengths some watcher uses. Other ranges share one entry per
distinct (start, end) and are scanned; there are few distinct ones in practice. etcd uses an
interval tree here; this gives the same answers with dict lookups for the hot cases.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from .watcher import Watcher, prefix_end


class WatcherGroup:
    def __init__(self) -> None:
        self.keys: dict[bytes, set[Watcher]] = {}
        self.prefixes: dict[bytes, set[Watcher]] = {}
        self._prefix_lens: Counter[int] = Counter()
        self.ranges: dict[tuple[bytes, bytes], set[Watcher]] = {}
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def _slot(self, w: Watcher, create: bool) -> set[Watcher] | None:
        if w.end is None:
            table: dict[bytes, set[Watcher]] = self.keys
            k: bytes = w.key
        elif w.end and w.end == prefix_end(w.key):
            table, k = self.prefixes, w.key
        else:
            rk = (w.key, w.end)
            found = self.ranges.get(rk)
            if found is None and create:
                found = self.ranges[rk] = set()
            return found
        found = table.get(k)
        if found is None and create:
            found = table[k] = set()
            if table is self.prefixes:
                self._prefix_lens[len(k)] += 1
        return found

    def add(self, w: Watcher) -> None:
        slot = self._slot(w, True)
        assert slot is not None
        slot.add(w)
        self.size += 1

    def remove(self, w: Watcher) -> bool:
        slot = self._slot(w, False)
        if slot is None or w not in slot:
            return False
        slot.remove(w)
        self.size -= 1
        if not slot:
            if w.end is None:
                del self.keys[w.key]
            elif (w.key, w.end) in self.ranges:
                del self.ranges[(w.key, w.end)]
            else:
                del self.prefixes[w.key]
                self._prefix_lens[len(w.key)] -= 1
                if not self._prefix_lens[len(w.key)]:
                    del self._prefix_lens[len(w.key)]
        return True

    def match(self, key: bytes) -> Iterator[set[Watcher]]:
        """The sets of watchers whose range holds ``key`` (disjoint sets)."""
        found = self.keys.get(key)
        if found:
            yield found
        if self.prefixes:
            n = len(key)
            for length in self._prefix_lens:
                if length <= n:
                    found = self.prefixes.get(key[:length])
                    if found:
                        yield found
        for (start, end), ws in self.ranges.items():
            if start <= key and (not end or key < end):
                yield ws

    def contains(self, key: bytes) -> bool:
        return next(self.match(key), None) is not None

    def __iter__(self) -> Iterator[Watcher]:
        for table in (self.keys, self.prefixes):
            for ws in table.values():
                yield from ws
        for ws in self.ranges.values():
            yield from ws
