"""bbolt's on-disk layouts (page.go, db.go, bucket.go of go.etcd.io/bbolt 1.3), little-endian.

page header   id u64, flags u16, count u16, overflow u32            (16 bytes)
leaf element  flags u32, pos u32, ksize u32, vsize u32              (16 bytes; pos counts from the element)
branch elem.  pos u32, ksize u32, pgid u64                          (16 bytes)
meta          magic u32, version u32, page size u32, flags u32, root bucket (root u64, sequence u64),
              freelist u64, pgid (high-water mark) u64, txid u64, checksum u64 (FNV-1a 64 of what precedes)
freelist      count u16 in the header (0xFFFF: the real count is the first u64), then page ids u64
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PAGE_SIZE = 4096
MAGIC = 0xED0CDAED
VERSION = 2

BRANCH_PAGE = 0x01
LEAF_PAGE = 0x02
META_PAGE = 0x04
FREELIST_PAGE = 0x10
BUCKET_LEAF = 0x01  # a leaf element whose value is a bucket

PAGE_HEADER = struct.Struct("<QHHI")
LEAF_ELEMENT = struct.Struct("<IIII")
BRANCH_ELEMENT = struct.Struct("<IIQ")
BUCKET_HEADER = struct.Struct("<QQ")  # root pgid (0: inline), sequence
_META = struct.Struct("<IIII QQ QQQ")
_CHECKSUM = struct.Struct("<Q")
MAX_INLINE_BUCKET = PAGE_SIZE // 4  # bucket.go maxInlineBucketSize
FREELIST_COUNT_OVERFLOW = 0xFFFF

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_U64_MASK = (1 << 64) - 1


class BoltError(Exception):
    """A file that is not a bbolt database bbolt would open, or is damaged; the message says where."""


def fnv64a(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _U64_MASK
    return h


@dataclass(frozen=True)
class Meta:
    page_size: int
    root: int
    root_sequence: int
    freelist: int
    hwm: int  # first page id past the database (bbolt's meta.pgid)
    txid: int
    flags: int = 0

    def encode(self) -> bytes:
        body = _META.pack(MAGIC, VERSION, self.page_size, self.flags, self.root, self.root_sequence,
                          self.freelist, self.hwm, self.txid)
        return body + _CHECKSUM.pack(fnv64a(body))

    @classmethod
    def decode(cls, raw: bytes) -> Meta:
        """The meta in a page's body; raises BoltError when bbolt's validate() would refuse it."""
        if len(raw) < _META.size + _CHECKSUM.size:
            raise BoltError("meta page cut short")
        magic, version, page_size, flags, root, seq, freelist, hwm, txid = _META.unpack_from(raw)
        (checksum,) = _CHECKSUM.unpack_from(raw, _META.size)
        if magic != MAGIC:
            raise BoltError("not a bbolt database (bad magic in the meta page)")
        if version != VERSION:
            raise BoltError(f"bbolt version {version} is not supported (only {VERSION})")
        if checksum != 0 and checksum != fnv64a(raw[:_META.size]):
            raise BoltError("meta page checksum mismatch")
        return cls(page_size, root, seq, freelist, hwm, txid, flags)


def page_header(pgid: int, flags: int, count: int, overflow: int = 0) -> bytes:
    return PAGE_HEADER.pack(pgid, flags, count, overflow)


def meta_page(pgid: int, meta: Meta) -> bytes:
    raw = page_header(pgid, META_PAGE, 0) + meta.encode()
    return raw + bytes(meta.page_size - len(raw))
