"""The in-memory key index: for every user key, the revisions at which it changed.

A key's life is a list of generations; a generation runs from a creation to a deletion
(tombstone). Reading at revision R finds, for each key, the newest revision <= R that is not
past a tombstone. User keys may be far longer than LMDB's 511-byte key limit, so they live
here (and inside stored values), never as LMDB keys.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from sortedcontainers import SortedDict, SortedList

from .revision import Revision


class Generation:
    """One life of a key: created at ``created``, ``ver`` changes so far, revisions in order."""

    __slots__ = ("created", "revs", "ver")

    def __init__(self, created: Revision | None = None, ver: int = 0, revs: list[Revision] | None = None) -> None:
        self.created = created
        self.ver = ver
        self.revs: list[Revision] = revs if revs is not None else []

    def copy(self) -> Generation:
        return Generation(self.created, self.ver, list(self.revs))


class KeyIndex:
    """All generations of one key. The last generation is empty when the key is deleted."""

    __slots__ = ("generations", "key", "lease")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.generations: list[Generation] = [Generation()]
        self.lease = 0  # lease of the live value, so a write can detach it without a disk read

    def copy(self) -> KeyIndex:
        clone = KeyIndex(self.key)
        clone.generations = [g.copy() for g in self.generations]
        clone.lease = self.lease
        return clone

    @property
    def alive(self) -> bool:
        return bool(self.generations[-1].revs)

    def current(self) -> Generation:
        return self.generations[-1]

    def put(self, rev: Revision) -> None:
        g = self.generations[-1]
        if not g.revs:
            g.created = rev
        g.revs.append(rev)
        g.ver += 1

    def restore(self, created: Revision, modified: Revision, ver: int) -> None:
        """Start a generation as loaded from disk (only its newest revision matters)."""
        g = self.generations[-1]
        if not g.revs:
            g.created = created
        g.revs.append(modified)
        g.ver = ver

    def tombstone(self, rev: Revision) -> None:
        self.put(rev)
        self.generations.append(Generation())
        self.lease = 0

    def _find_generation(self, at_rev: int) -> Generation | None:
        last = len(self.generations) - 1
        for i in range(last, -1, -1):
            g = self.generations[i]
            if not g.revs:
                continue
            if i != last and g.revs[-1].main <= at_rev:
                return None  # deleted at or before at_rev
            if g.revs[0].main <= at_rev:
                return g
        return None

    def get(self, at_rev: int) -> Revision | None:
        """The revision holding this key's value at ``at_rev``, or None if absent then."""
        g = self._find_generation(at_rev)
        if g is None:
            return None
        for rev in reversed(g.revs):
            if rev.main <= at_rev:
                return rev
        return None

    def since(self, rev: int) -> list[Revision]:
        """Revisions with main >= rev (one per main revision), oldest first: what a watcher replays."""
        out: list[Revision] = []
        for g in self.generations:
            for r in g.revs:
                if r.main < rev:
                    continue
                if out and out[-1].main == r.main:
                    out[-1] = r
                else:
                    out.append(r)
        return out

    def compact(self, at_rev: int, keep: set[Revision]) -> bool:
        """Drop history older than ``at_rev``; add to ``keep`` the revisions still needed.

        Returns True when nothing is left (the key was deleted at or before at_rev)."""
        gens = self.generations
        gi = 0
        while gi < len(gens) - 1 and gens[gi].revs[-1].main <= at_rev:
            gi += 1  # whole generation ended (tombstone) at or before at_rev
        g = gens[gi]
        idx = -1
        for i in range(len(g.revs) - 1, -1, -1):
            if g.revs[i].main <= at_rev:
                idx = i
                break
        if idx != -1:
            g.revs = g.revs[idx:]
            keep.add(g.revs[0])
            if len(g.revs) == 1 and gi != len(gens) - 1:
                keep.discard(g.revs[0])  # only the tombstone is left: it goes too
                gi += 1
        self.generations = gens[gi:]
        return len(self.generations) == 1 and not self.generations[0].revs


class TreeIndex:
    """Sorted map of user key -> KeyIndex, shared by readers; changed only when a batch is published."""

    def __init__(self) -> None:
        self._keys: SortedDict = SortedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key: bytes) -> KeyIndex | None:
        ki: KeyIndex | None = self._keys.get(key)
        return ki

    def keys_in_range(self, key: bytes, end: bytes | None) -> Iterator[bytes]:
        """Keys in [key, end); ``end=None`` is the single key, ``end=b""`` is every key >= key."""
        if end is None:
            if key in self._keys:
                yield key
            return
        if end == b"":
            yield from self._keys.irange(minimum=key)
        elif end > key:
            yield from self._keys.irange(minimum=key, maximum=end, inclusive=(True, False))

    def items(self) -> Iterable[tuple[bytes, KeyIndex]]:
        return self._keys.items()  # type: ignore[no-any-return]

    def set(self, key: bytes, ki: KeyIndex) -> None:
        self._keys[key] = ki

    def remove(self, key: bytes) -> None:
        self._keys.pop(key, None)


class BatchIndex:
    """A copy-on-write view over a TreeIndex for one apply batch.

    The apply thread changes keys here while readers keep using the shared TreeIndex; once the
    batch is durable, ``publish`` moves the changes into the shared index on the readers' thread.
    """

    def __init__(self, base: TreeIndex) -> None:
        self.base = base
        self.changed: dict[bytes, KeyIndex] = {}
        self._new_keys: SortedList = SortedList()

    def get(self, key: bytes) -> KeyIndex | None:
        ki = self.changed.get(key)
        return ki if ki is not None else self.base.get(key)

    def for_update(self, key: bytes) -> KeyIndex:
        """The key's index, copied into this batch on first change (created if new)."""
        ki = self.changed.get(key)
        if ki is not None:
            return ki
        base = self.base.get(key)
        if base is None:
            ki = KeyIndex(key)
            self._new_keys.add(key)
        else:
            ki = base.copy()
        self.changed[key] = ki
        return ki

    def keys_in_range(self, key: bytes, end: bytes | None) -> Iterator[bytes]:
        base_keys = self.base.keys_in_range(key, end)
        if not self._new_keys:
            yield from base_keys
            return
        if end is None:
            new: Iterable[bytes] = [key] if key in self._new_keys else []
        elif end == b"":
            new = self._new_keys.irange(minimum=key)
        elif end > key:
            new = self._new_keys.irange(minimum=key, maximum=end, inclusive=(True, False))
        else:
            new = []
        yield from heapq.merge(base_keys, new)  # disjoint: a key is new or in base

    def publish(self) -> None:
        for key, ki in self.changed.items():
            self.base.set(key, ki)
