"""The in-memory key index: for every user key, the revisions at which it changed.

A key's life is a list of generations; a generation runs from a creation to a deletion
(tombstone). Reading at revision R finds, for each key, the newest revision <= R that is not
past a tombstone. User keys may be far longer than LMDB's 511-byte key limit, so they live
here (and inside stored values), never as LMDB keys.

Memory: the shared index holds one packed ``bytes`` per key (signed 64-bit native ints:
``lease``, then per generation ``created, ver, n, main_1, sub_1, ..., main_n, sub_n``; a deleted
key ends with an empty generation ``0, 0, 0``). A live key with one revision costs 48 bytes of
payload instead of the ~1 kB of Python objects a Generation/Revision tree took. Only the keys an
apply batch changes are unpacked into mutable ``KeyIndex`` objects, and packed again on publish.
"""

from __future__ import annotations

import heapq
import struct
from array import array
from collections.abc import Iterable, Iterator
from typing import TypeAlias

from sortedcontainers import SortedDict, SortedList

from .revision import Revision

_EMPTY_GEN = (0, 0, 0)
_NEW_KEY = (0, *_EMPTY_GEN)  # no lease, one empty generation
_LIVE_ONE_REV = 6  # packed length (in ints) of a live key with a single revision: the common case
_SINGLE = struct.Struct("=6q")
_MAIN_SUB = struct.Struct("=2q")
_MAIN_OFFSET = 32  # bytes before (main, sub) in a single-revision key: lease, created, ver, n
RevisionSet = set[Revision]  # named here: TreeIndex.set shadows the builtin inside the class
IntSeq: TypeAlias = "memoryview | array[int]"  # packed ints: a view of the shared bytes, or a batch's own copy


def _ints(raw: bytes) -> memoryview:
    return memoryview(raw).cast("q")


def pack_single(lease: int, created: int, ver: int, main: int, sub: int) -> bytes:
    """The packed index of a live key with one revision (what a restart builds for most keys)."""
    return _SINGLE.pack(lease, created, ver, 1, main, sub)


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
    """All generations of one key as objects, for compaction (rare). The last generation is
    empty when the key is deleted."""

    __slots__ = ("generations", "key", "lease")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.generations: list[Generation] = [Generation()]
        self.lease = 0  # lease of the live value, so a write can detach it without a disk read

    @classmethod
    def unpack(cls, key: bytes, raw: bytes) -> KeyIndex:
        v = _ints(raw)
        ki = cls(key)
        ki.lease = v[0]
        gens: list[Generation] = []
        i, end = 1, len(v)
        while i < end:
            created, ver, n = v[i], v[i + 1], v[i + 2]
            revs = [Revision(v[j], v[j + 1]) for j in range(i + 3, i + 3 + 2 * n, 2)]
            gens.append(Generation(Revision(created, 0) if n else None, ver, revs))
            i += 3 + 2 * n
        ki.generations = gens or [Generation()]
        return ki

    def pack(self) -> bytes:
        ints = [self.lease]
        for g in self.generations:
            if not g.revs:
                ints.extend(_EMPTY_GEN)
                continue
            ints.append(g.created.main if g.created is not None else g.revs[0].main)
            ints.append(g.ver)
            ints.append(len(g.revs))
            for r in g.revs:
                ints.append(r.main)
                ints.append(r.sub)
        return array("q", ints).tobytes()

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

    def compact(self, at_rev: int, keep: RevisionSet) -> bool:
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


def _revision_at(v: IntSeq, at_rev: int) -> Revision | None:
    """``KeyIndex.get`` over the packed ints, with no object per revision."""
    end = len(v)
    if end == _LIVE_ONE_REV:  # the common case: one live revision
        return Revision(v[4], v[5]) if v[4] <= at_rev else None
    heads = []
    i = 1
    while i < end:
        heads.append(i)
        i += 3 + 2 * v[i + 2]
    last = len(heads) - 1
    for gi in range(last, -1, -1):
        h = heads[gi]
        n = v[h + 2]
        if n == 0:
            continue
        first, newest = h + 3, h + 3 + 2 * (n - 1)
        if gi != last and v[newest] <= at_rev:
            return None  # deleted at or before at_rev
        if v[first] <= at_rev:
            for j in range(newest, first - 1, -2):
                if v[j] <= at_rev:
                    return Revision(v[j], v[j + 1])
    return None


def packed_revision_at(raw: bytes, at_rev: int) -> Revision | None:
    """The revision holding the key's value at ``at_rev`` (the hot path of every range read)."""
    if len(raw) == _SINGLE.size:  # one live revision: read it in place
        main, sub = _MAIN_SUB.unpack_from(raw, _MAIN_OFFSET)
        return Revision(main, sub) if main <= at_rev else None
    return _revision_at(_ints(raw), at_rev)


class PackedKey:
    """One key's packed ints, copied into a mutable array for an apply batch (or a restart).

    A write appends to the array: a key with a long history costs one memcpy per batch, not an
    object per revision."""

    __slots__ = ("_head", "ints", "key")

    def __init__(self, key: bytes, raw: bytes | None = None) -> None:
        self.key = key
        self.ints: array[int] = array("q", _NEW_KEY if raw is None else raw)
        self._head = 1  # where the newest generation's header starts
        if raw is None or len(raw) == _SINGLE.size:
            return
        i, end = 1, len(self.ints)
        while i < end:
            self._head = i
            i += 3 + 2 * self.ints[i + 2]

    @property
    def lease(self) -> int:
        return self.ints[0]

    @lease.setter
    def lease(self, lease: int) -> None:
        self.ints[0] = lease

    @property
    def alive(self) -> bool:
        return self.ints[self._head + 2] > 0

    def created_and_version(self) -> tuple[int, int] | None:
        """(create revision, version) of the live generation, None when the key is not live."""
        h = self._head
        return (self.ints[h], self.ints[h + 1]) if self.ints[h + 2] else None

    def put(self, rev: Revision, created: int | None = None, ver: int | None = None) -> None:
        """Add ``rev`` to the live generation (starting one if none); ``created``/``ver`` as
        stored, when a restart reads them back, else counted here."""
        a, h = self.ints, self._head
        if a[h + 2] == 0:
            a[h] = rev.main if created is None else created
        a[h + 1] = a[h + 1] + 1 if ver is None else ver
        a[h + 2] += 1
        a.append(rev.main)
        a.append(rev.sub)

    def tombstone(self, rev: Revision) -> None:
        self.put(rev)
        self._head = len(self.ints)
        self.ints.extend(_EMPTY_GEN)
        self.ints[0] = 0

    def get(self, at_rev: int) -> Revision | None:
        return _revision_at(self.ints, at_rev)

    def pack(self) -> bytes:
        return self.ints.tobytes()


def packed_alive(raw: bytes) -> bool:
    """Whether the newest generation is live: an empty one ends ``0, 0, 0``; a live one ends with
    a revision, whose main is never 0."""
    v = _ints(raw)
    return v[len(v) - 2] != 0


def packed_lease(raw: bytes) -> int:
    return int(_ints(raw)[0])


class TreeIndex:
    """Sorted map of user key -> packed index, shared by readers; changed only when a batch is published."""

    def __init__(self, keys: SortedDict | None = None) -> None:
        self._keys: SortedDict = keys if keys is not None else SortedDict()

    @classmethod
    def from_packed(cls, packed: dict[bytes, bytes]) -> TreeIndex:
        """Built in one go from an unordered dict (a restart's scan, which runs in revision order)."""
        return cls(SortedDict(packed))

    def __len__(self) -> int:
        return len(self._keys)

    def raw(self, key: bytes) -> bytes | None:
        raw: bytes | None = self._keys.get(key)
        return raw

    def get(self, key: bytes) -> KeyIndex | None:
        """The key's index, unpacked (a copy: changing it does not change the shared index)."""
        raw = self.raw(key)
        return None if raw is None else KeyIndex.unpack(key, raw)

    def revision_at(self, key: bytes, at_rev: int) -> Revision | None:
        raw = self.raw(key)
        return None if raw is None else packed_revision_at(raw, at_rev)

    def revisions_in_range(self, key: bytes, end: bytes | None, at_rev: int) -> list[Revision]:
        """The revision of each key in [key, end) that exists at ``at_rev``, in key order: one
        loop, no call per key (a count over every key walks the whole index)."""
        get = self._keys.__getitem__
        single, unpack_at, slow, new = _SINGLE.size, _MAIN_SUB.unpack_from, packed_revision_at, tuple.__new__
        out: list[Revision] = []
        for k in self.keys_in_range(key, end):
            raw = get(k)
            if len(raw) == single:
                pair = unpack_at(raw, _MAIN_OFFSET)
                if pair[0] <= at_rev:
                    out.append(new(Revision, pair))  # Revision(*pair) without its Python-level __new__
            else:
                rev = slow(raw, at_rev)
                if rev is not None:
                    out.append(rev)
        return out

    def keep_for_compaction(self, key: bytes, at_rev: int, keep: RevisionSet) -> None:
        """Add to ``keep`` what a compaction at ``at_rev`` keeps of ``key`` (nothing changes)."""
        raw = self.raw(key)
        if raw is None:
            return
        v = _ints(raw)
        if len(v) == _LIVE_ONE_REV:
            if v[4] <= at_rev:
                keep.add(Revision(v[4], v[5]))
            return
        KeyIndex.unpack(key, raw).compact(at_rev, keep)

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

    def leases(self) -> Iterator[tuple[bytes, int]]:
        """(key, lease) of every live key attached to a lease."""
        for key, raw in self._keys.items():
            lease = packed_lease(raw)
            if lease and packed_alive(raw):
                yield key, lease

    def live_count(self) -> int:
        return sum(1 for raw in self._keys.values() if packed_alive(raw))

    def set(self, key: bytes, ki: KeyIndex | PackedKey) -> None:
        self._keys[key] = ki.pack()

    def set_raw(self, key: bytes, raw: bytes) -> None:
        self._keys[key] = raw

    def remove(self, key: bytes) -> None:
        self._keys.pop(key, None)

    def compact(self, at_rev: int) -> None:
        """Drop history older than ``at_rev`` from every key (and keys deleted by then)."""
        keep: RevisionSet = set()
        doomed: list[bytes] = []
        changed: list[tuple[bytes, bytes]] = []
        for key, raw in self._keys.items():
            if len(raw) == 8 * _LIVE_ONE_REV:
                continue  # one live revision: compaction never changes it
            ki = KeyIndex.unpack(key, raw)
            if ki.compact(at_rev, keep):
                doomed.append(key)
            else:
                new = ki.pack()
                if new != raw:
                    changed.append((key, new))
        for key in doomed:
            del self._keys[key]
        for key, new in changed:
            self._keys[key] = new


class BatchIndex:
    """A copy-on-write view over a TreeIndex for one apply batch.

    The apply thread changes keys here while readers keep using the shared TreeIndex; once the
    batch is durable, ``publish`` moves the changes into the shared index on the readers' thread.
    """

    def __init__(self, base: TreeIndex) -> None:
        self.base = base
        self.changed: dict[bytes, PackedKey] = {}
        self._new_keys: SortedList = SortedList()

    def revision_at(self, key: bytes, at_rev: int) -> Revision | None:
        pk = self.changed.get(key)
        return pk.get(at_rev) if pk is not None else self.base.revision_at(key, at_rev)

    def keep_for_compaction(self, key: bytes, at_rev: int, keep: RevisionSet) -> None:
        pk = self.changed.get(key)
        if pk is None:
            self.base.keep_for_compaction(key, at_rev, keep)
        else:
            KeyIndex.unpack(key, pk.pack()).compact(at_rev, keep)

    def revisions_in_range(self, key: bytes, end: bytes | None, at_rev: int) -> list[Revision]:
        if not self.changed:
            return self.base.revisions_in_range(key, end, at_rev)
        out: list[Revision] = []
        for k in self.keys_in_range(key, end):
            rev = self.revision_at(k, at_rev)
            if rev is not None:
                out.append(rev)
        return out

    def for_update(self, key: bytes) -> PackedKey:
        """The key's index, copied into this batch on first change (created if new)."""
        pk = self.changed.get(key)
        if pk is not None:
            return pk
        raw = self.base.raw(key)
        if raw is None:
            self._new_keys.add(key)
        pk = self.changed[key] = PackedKey(key, raw)
        return pk

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
