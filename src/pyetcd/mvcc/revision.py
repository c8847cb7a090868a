"""Revisions ``(main, sub)`` and their byte form, as etcd lays them out in its key bucket.

8-byte big-endian main, ``_``, 8-byte big-endian sub, and a trailing ``t`` for a tombstone:
big-endian makes LMDB's byte order the revision order, so a scan walks history in order.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

_REV = struct.Struct(">QcQ")
TOMBSTONE_MARK = b"t"
REV_BYTES_LEN = 17


class Revision(NamedTuple):
    main: int
    sub: int


def encode_revision(main: int, sub: int, tombstone: bool = False) -> bytes:
    raw = _REV.pack(main, b"_", sub)
    return raw + TOMBSTONE_MARK if tombstone else raw


def decode_revision(raw: bytes) -> tuple[Revision, bool]:
    """The revision in a key-bucket key, and whether it marks a tombstone."""
    main, _, sub = _REV.unpack_from(raw)
    return Revision(main, sub), len(raw) > REV_BYTES_LEN and raw[REV_BYTES_LEN:] == TOMBSTONE_MARK


def main_revision_prefix(main: int) -> bytes:
    """The smallest key-bucket key of a main revision (sub 0)."""
    return _REV.pack(main, b"_", 0)
