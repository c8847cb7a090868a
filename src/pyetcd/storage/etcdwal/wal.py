"""etcd's write-ahead log: ``member/wal/<seq>-<index>.wal`` files of framed walpb.Records.

A frame is a little-endian 64-bit length word (low 56 bits: record size; when the top bit is
set, bits 56-58 count the padding that aligns the next frame to 8 bytes), then the record:
walpb.Record{type 1, crc 2, data 3}. Each record's crc is CRC-32C over its data, chained from
the previous record's; a crc record opening each file carries the chain over. The tail of the
last file is preallocated zeros (a zero length word ends the log); a torn last record there is
what a crash leaves and ends the log too. A crc mismatch anywhere else is damage: WalError.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import crc32c

from .wire import Entry, HardState, SnapshotMeta, WireError, as_dict, uint_field, wal_snapshot

METADATA, ENTRY, STATE, CRC, SNAPSHOT = 1, 2, 3, 4, 5
_LEN = struct.Struct("<q")
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")


class WalError(Exception):
    """A WAL that cannot be trusted; the message names the file and what is wrong."""


@dataclass
class WalContents:
    node_id: int = 0  # etcdserverpb.Metadata NodeID 1, ClusterID 2
    cluster_id: int = 0
    hard_state: HardState = field(default_factory=HardState)
    snapshot: SnapshotMeta = field(default_factory=lambda: SnapshotMeta(0, 0))  # the latest snapshot record
    entries: dict[int, Entry] = field(default_factory=dict)  # index -> entry, later writes winning

    def term_at(self, index: int) -> int | None:
        if index == self.snapshot.index:
            return self.snapshot.term
        e = self.entries.get(index)
        return None if e is None else e.term


def wal_files(wal_dir: Path) -> list[Path]:
    return sorted(p for p in wal_dir.iterdir() if _NAME.match(p.name))


def read_wal(wal_dir: Path) -> WalContents:
    files = wal_files(wal_dir)
    if not files:
        raise WalError(f"{wal_dir}: no .wal files")
    out = WalContents()
    crc = 0
    for i, path in enumerate(files):
        crc = _read_file(path, out, crc, last=i == len(files) - 1)
    return out


def _read_file(path: Path, out: WalContents, crc: int, last: bool) -> int:
    buf = path.read_bytes()
    pos = 0
    while pos + 8 <= len(buf):
        (word,) = _LEN.unpack_from(buf, pos)
        if word == 0:
            break  # preallocated space: the end of what was written
        size = word & ((1 << 56) - 1)
        pad = (word >> 56) & 0x7 if word < 0 else 0  # padding is flagged by the sign bit
        start, end = pos + 8, pos + 8 + size
        if end > len(buf):
            if last:
                break  # a torn write at the tail
            raise WalError(f"{path}: record at offset {pos} runs past the end of the file")
        try:
            rec = as_dict(buf[start:end])
        except WireError as e:
            if last:
                break
            raise WalError(f"{path}: record at offset {pos} is damaged: {e}") from e
        rtype = rec.get(1, [0])[-1]
        rcrc = rec.get(2, [0])[-1]
        data = rec.get(3, [b""])[-1]
        assert isinstance(data, bytes)
        if rtype == CRC:
            if crc != 0 and rcrc != crc:
                raise WalError(f"{path}: crc chain broken at offset {pos}")
            crc = int(rcrc)  # type: ignore[arg-type]
        else:
            crc = crc32c.crc32c(data, crc)
            if rcrc != crc:
                if last and _rest_is_zero(buf, end + pad):
                    break  # the last record was torn
                raise WalError(f"{path}: crc mismatch at offset {pos}: the WAL is damaged")
            _apply(rtype, data, out)
        pos = end + pad
    return crc


def _rest_is_zero(buf: bytes, pos: int) -> bool:
    return not any(buf[pos:pos + 4096])


def _apply(rtype: object, data: bytes, out: WalContents) -> None:
    if rtype == METADATA:
        out.node_id, out.cluster_id = uint_field(data, 1), uint_field(data, 2)
    elif rtype == ENTRY:
        e = Entry.decode(data)
        last = next(reversed(out.entries), 0)  # the newest index: each insert drops every later one
        for stale in range(e.index, last + 1):  # a new leader overwrote a suffix
            out.entries.pop(stale, None)
        out.entries[e.index] = e
    elif rtype == STATE:
        out.hard_state = HardState.decode(data)
    elif rtype == SNAPSHOT:
        snap = wal_snapshot(data)
        if snap.index >= out.snapshot.index:
            out.snapshot = snap
