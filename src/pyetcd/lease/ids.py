"""Server-chosen lease ids, made as etcd's ``idutil.Generator`` makes them.

etcd ids are ``member-id low 16 bits | 40 bits of wall-clock milliseconds | 8-bit counter``,
so ids from different members (and from restarts of one member) do not collide; clients see
them in hex (``etcdctl lease grant`` prints ``694d7b8e8c2b5e0a``), so we keep the same shape.
"""

from __future__ import annotations

import time

_TS_BITS = 40
_COUNT_BITS = 8
_SUFFIX_BITS = _TS_BITS + _COUNT_BITS
_SUFFIX_MASK = (1 << _SUFFIX_BITS) - 1
_POSITIVE = (1 << 63) - 1


class IdGenerator:
    """Unique positive int64 ids for one member."""

    def __init__(self, member_id: int, now_ns: int | None = None) -> None:
        millis = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
        self._prefix = (member_id & 0xFFFF) << _SUFFIX_BITS
        self._suffix = (millis & ((1 << _TS_BITS) - 1)) << _COUNT_BITS

    def next(self) -> int:
        """The next id; never 0 (0 means "no lease" on the wire)."""
        while True:
            self._suffix += 1
            lease_id = (self._prefix | (self._suffix & _SUFFIX_MASK)) & _POSITIVE
            if lease_id:
                return lease_id
