"""A user's key permissions merged over all its roles, checked with etcd's range semantics.

etcd (auth/range_perm_cache.go) puts every permission of every role of a user into two interval
trees (read, write) and asks whether a request's interval is entirely covered. Here each set is
kept as a sorted list of disjoint half-open intervals (the union), so a check is one bisect.
An ``end`` of None is +infinity: a permission or request whose range end is ``"\\0"`` (etcd's
"from key") reaches every key after its start. A single key ``k`` is the interval [k, k+"\\0").
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from pyetcd.api import auth_pb2

READ = auth_pb2.Permission.READ
WRITE = auth_pb2.Permission.WRITE
READWRITE = auth_pb2.Permission.READWRITE

Interval = tuple[bytes, bytes | None]


def interval(key: bytes, range_end: bytes) -> Interval:
    """The keys a (key, range_end) pair names, as etcd reads it."""
    if not range_end:
        return key, key + b"\0"
    if range_end == b"\0":
        return key, None
    return key, range_end


def _union(ivls: Iterable[Interval]) -> tuple[list[bytes], list[bytes | None]]:
    starts: list[bytes] = []
    ends: list[bytes | None] = []
    for start, end in sorted(ivls, key=lambda iv: iv[0]):
        if end is not None and end <= start:
            continue  # an empty range grants nothing
        if ends and (ends[-1] is None or start <= ends[-1]):
            last = ends[-1]
            if last is not None and (end is None or end > last):
                ends[-1] = end
            continue
        starts.append(start)
        ends.append(end)
    return starts, ends


@dataclass(frozen=True)
class RangeSet:
    """A union of intervals; ``covers`` says whether one interval lies entirely inside it."""

    starts: tuple[bytes, ...] = ()
    ends: tuple[bytes | None, ...] = ()

    @classmethod
    def of(cls, ivls: Iterable[Interval]) -> RangeSet:
        starts, ends = _union(ivls)
        return cls(tuple(starts), tuple(ends))

    def covers(self, ivl: Interval) -> bool:
        start, end = ivl
        i = bisect.bisect_right(self.starts, start) - 1
        if i < 0:
            return False
        have = self.ends[i]
        if have is None:
            return True
        if start >= have:
            return False
        return end is not None and end <= have


@dataclass(frozen=True)
class UserPerms:
    """What one user may read and write (etcd's unifiedRangePermissions)."""

    read: RangeSet
    write: RangeSet

    @classmethod
    def merge(cls, roles: Iterable[auth_pb2.Role]) -> UserPerms:
        reads: list[Interval] = []
        writes: list[Interval] = []
        for role in roles:
            for p in role.keyPermission:
                ivl = interval(p.key, p.range_end)
                if p.permType in (READ, READWRITE):
                    reads.append(ivl)
                if p.permType in (WRITE, READWRITE):
                    writes.append(ivl)
        return cls(RangeSet.of(reads), RangeSet.of(writes))

    def allows(self, key: bytes, range_end: bytes, perm: int) -> bool:
        ranges = self.read if perm == READ else self.write
        return ranges.covers(interval(key, range_end))
