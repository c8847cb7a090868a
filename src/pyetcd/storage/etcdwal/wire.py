"""The protobuf wire format, and the raft messages etcd writes into its WAL and snap files.

Field numbers are those of etcd's raft/raftpb/raft.proto, wal/walpb/record.proto and
etcdserver/api/snap/snappb/snap.proto (etcd 3.4/3.5).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pyetcd.varint import VarintError, decode_varint

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """Bytes that are not the protobuf message they should be."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    try:
        return decode_varint(buf, pos)
    except VarintError as e:
        raise WireError(str(e)) from e


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field, in order."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == VARINT:
            value, pos = _varint(buf, pos)
            yield num, wt, value
        elif wt == BYTES:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise WireError(f"field {num} runs past the end of the message")
            yield num, wt, buf[pos:pos + n]
            pos += n
        elif wt == FIXED64:
            yield num, wt, int.from_bytes(buf[pos:pos + 8], "little")
            pos += 8
        elif wt == FIXED32:
            yield num, wt, int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wt} (field {num})")


def as_dict(buf: bytes) -> dict[int, list[int | bytes]]:
    out: dict[int, list[int | bytes]] = {}
    for num, _, value in fields(buf):
        out.setdefault(num, []).append(value)
    return out


def _int(d: dict[int, list[int | bytes]], num: int) -> int:
    v = d.get(num, [0])[-1]
    return v if isinstance(v, int) else 0


def _bytes(d: dict[int, list[int | bytes]], num: int) -> bytes:
    v = d.get(num, [b""])[-1]
    return v if isinstance(v, bytes) else b""


def _ints(buf: bytes, *nums: int) -> list[int]:
    d = as_dict(buf)
    return [_int(d, n) for n in nums]


def _uints(d: dict[int, list[int | bytes]], num: int) -> list[int]:
    """A repeated uint64, packed or not."""
    out: list[int] = []
    for v in d.get(num, []):
        if isinstance(v, int):
            out.append(v)
        else:
            pos = 0
            while pos < len(v):
                x, pos = _varint(v, pos)
                out.append(x)
    return out


ENTRY_NORMAL, ENTRY_CONF_CHANGE, ENTRY_CONF_CHANGE_V2 = 0, 1, 2


@dataclass(frozen=True)
class Entry:
    """raftpb.Entry: Term 2, Index 3, Type 1, Data 4."""

    term: int
    index: int
    type: int
    data: bytes

    @classmethod
    def decode(cls, buf: bytes) -> Entry:
        d = as_dict(buf)
        return cls(_int(d, 2), _int(d, 3), _int(d, 1), _bytes(d, 4))


@dataclass(frozen=True)
class HardState:
    """raftpb.HardState: term 1, vote 2, commit 3."""

    term: int = 0
    vote: int = 0
    commit: int = 0

    @classmethod
    def decode(cls, buf: bytes) -> HardState:
        return cls(*_ints(buf, 1, 2, 3))


@dataclass(frozen=True)
class ConfState:
    """raftpb.ConfState: voters 1, learners 2."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()

    @classmethod
    def decode(cls, buf: bytes) -> ConfState:
        d = as_dict(buf)
        return cls(tuple(_uints(d, 1)), tuple(_uints(d, 2)))


CC_ADD_NODE, CC_REMOVE_NODE, CC_UPDATE_NODE, CC_ADD_LEARNER = 0, 1, 2, 3


@dataclass(frozen=True)
class ConfChange:
    """raftpb.ConfChange: Type 2, NodeID 3, Context 4 (etcd puts the member's JSON there)."""

    type: int
    node_id: int
    context: bytes

    @classmethod
    def decode(cls, buf: bytes) -> ConfChange:
        kind, node = _ints(buf, 2, 3)
        return cls(kind, node, bytes_field(buf, 4))


@dataclass(frozen=True)
class SnapshotMeta:
    """raftpb.SnapshotMetadata (conf_state 1, index 2, term 3) — also walpb.Snapshot's index/term."""

    index: int
    term: int
    conf_state: ConfState = field(default_factory=ConfState)


def snapshot_metadata(buf: bytes) -> SnapshotMeta:
    d = as_dict(buf)
    return SnapshotMeta(_int(d, 2), _int(d, 3), ConfState.decode(_bytes(d, 1)))


def wal_snapshot(buf: bytes) -> SnapshotMeta:
    """walpb.Snapshot: index 1, term 2, conf_state 3 (3.5)."""
    d = as_dict(buf)
    return SnapshotMeta(_int(d, 1), _int(d, 2), ConfState.decode(_bytes(d, 3)))


def uint_field(buf: bytes, num: int) -> int:
    return _int(as_dict(buf), num)


def bytes_field(buf: bytes, num: int) -> bytes:
    return _bytes(as_dict(buf), num)
