"""Write a bbolt database in one pass over sorted keys (a B+tree bulk load).

Leaf pages are filled and written as keys arrive; each full page hands its first key and page id
to the level above, which does the same with branch pages, so memory holds one page per tree
level, never the data. Buckets small enough are stored inline, as bbolt itself does. The two
meta pages go last (they name the roots), so the output must be a seekable file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from .page import (
    BRANCH_ELEMENT,
    BRANCH_PAGE,
    BUCKET_HEADER,
    BUCKET_LEAF,
    FREELIST_PAGE,
    LEAF_ELEMENT,
    LEAF_PAGE,
    MAX_INLINE_BUCKET,
    PAGE_HEADER,
    PAGE_SIZE,
    Meta,
    meta_page,
    page_header,
)

_ELEM = LEAF_ELEMENT.size  # leaf and branch elements are both 16 bytes


@dataclass
class Bucket:
    """A nested bucket as a value: its (key, value) items, sorted by key (bytes order)."""

    items: Iterable[tuple[bytes, bytes | Bucket]]


@dataclass
class _Level:
    entries: list[tuple[bytes, int]] = field(default_factory=list)  # (first key, child page id)
    size: int = PAGE_HEADER.size


class BoltWriter:
    """``bucket(name, items)`` for each top-level bucket in name order, then ``close()``."""

    def __init__(self, f: BinaryIO, page_size: int = PAGE_SIZE) -> None:
        self.f = f
        self.page_size = page_size
        self.next_pgid = 2  # pages 0 and 1 are the metas, written by close()
        self._start = f.tell()
        f.write(bytes(2 * page_size))
        self._roots: list[tuple[bytes, bytes | Bucket]] = []
        self._last_name: bytes | None = None

    def bucket(self, name: bytes, items: Iterable[tuple[bytes, bytes | Bucket]]) -> None:
        """Write a top-level bucket now (its pages), remembered for the root bucket."""
        if self._last_name is not None and name <= self._last_name:
            raise ValueError("top-level buckets must be written in increasing name order")
        self._last_name = name
        self._roots.append((name, self._write_bucket(items)))

    def close(self) -> int:
        """Write the root bucket, an empty freelist and the metas; returns the file's size."""
        root = _Tree(self)
        for name, header in self._roots:
            assert isinstance(header, bytes)
            root.add(BUCKET_LEAF, name, header)
        root_pgid = root.finish()
        freelist = self._emit(page_header(0, FREELIST_PAGE, 0))
        hwm = self.next_pgid
        end = self.f.tell()
        self.f.seek(self._start)
        for pgid, txid in ((0, 2), (1, 1)):  # bbolt writes txid's meta to page txid % 2
            self.f.write(meta_page(pgid, Meta(self.page_size, root_pgid, 0, freelist, hwm, txid)))
        self.f.seek(end)
        return hwm * self.page_size

    # -- pages ----------------------------------------------------------------------------------
    def _emit(self, page: bytes) -> int:
        """Write a page at the next page id (its header's id and overflow filled in); returns the id."""
        pgid = self.next_pgid
        pages = -(-len(page) // self.page_size)
        _, flags, count, _ = PAGE_HEADER.unpack_from(page)
        raw = page_header(pgid, flags, count, pages - 1) + page[PAGE_HEADER.size:]
        self.f.write(raw + bytes(pages * self.page_size - len(raw)))
        self.next_pgid += pages
        return pgid

    def _write_bucket(self, items: Iterable[tuple[bytes, bytes | Bucket]]) -> bytes:
        """Write a bucket's pages (or keep it inline); returns its value in the parent."""
        tree = _Tree(self)
        pending: list[tuple[int, bytes, bytes]] = []
        inline_size: int | None = PAGE_HEADER.size  # None once the bucket cannot be inline
        last: bytes | None = None
        for key, value in items:
            if last is not None and key <= last:
                raise ValueError(f"keys must be written in increasing order: {key!r} after {last!r}")
            last = key
            if isinstance(value, Bucket):
                flags, raw = BUCKET_LEAF, self._write_bucket(value.items)
            else:
                flags, raw = 0, value
            if inline_size is not None:
                inline_size += _ELEM + len(key) + len(raw)
                if flags == 0 and inline_size <= MAX_INLINE_BUCKET:
                    pending.append((flags, key, raw))
                    continue
                inline_size = None
                for p in pending:
                    tree.add(*p)
                pending = []
            tree.add(flags, key, raw)
        if inline_size is not None:
            return BUCKET_HEADER.pack(0, 0) + _leaf_page(0, pending)
        return BUCKET_HEADER.pack(tree.finish(), 0)


def _leaf_page(pgid: int, elems: list[tuple[int, bytes, bytes]]) -> bytes:
    head = bytearray(page_header(pgid, LEAF_PAGE, len(elems)))
    data = bytearray()
    base = len(elems) * _ELEM
    for i, (flags, key, value) in enumerate(elems):
        head += LEAF_ELEMENT.pack(flags, base - i * _ELEM + len(data), len(key), len(value))
        data += key
        data += value
    return bytes(head + data)


def _branch_page(entries: list[tuple[bytes, int]]) -> bytes:
    head = bytearray(page_header(0, BRANCH_PAGE, len(entries)))
    data = bytearray()
    base = len(entries) * _ELEM
    for i, (key, child) in enumerate(entries):
        head += BRANCH_ELEMENT.pack(base - i * _ELEM + len(data), len(key), child)
        data += key
    return bytes(head + data)


class _Tree:
    """One bucket's B+tree being bulk-loaded: the leaf being filled and one pending branch per level."""

    def __init__(self, w: BoltWriter) -> None:
        self.w = w
        self.leaf: list[tuple[int, bytes, bytes]] = []
        self.leaf_size = PAGE_HEADER.size
        self.levels: list[_Level] = []  # levels[0] is the branch level just above the leaves
        self.emitted = False

    def add(self, flags: int, key: bytes, value: bytes) -> None:
        size = _ELEM + len(key) + len(value)
        if self.leaf and self.leaf_size + size > self.w.page_size:
            self._flush_leaf()
        self.leaf.append((flags, key, value))
        self.leaf_size += size

    def _flush_leaf(self) -> None:
        pgid = self.w._emit(_leaf_page(0, self.leaf))
        self._push(0, self.leaf[0][1], pgid)
        self.leaf, self.leaf_size = [], PAGE_HEADER.size

    def _push(self, level: int, key: bytes, pgid: int) -> None:
        if level == len(self.levels):
            self.levels.append(_Level())
        lv = self.levels[level]
        size = _ELEM + len(key)
        if lv.entries and lv.size + size > self.w.page_size:
            self._flush_branch(level)
        lv.entries.append((key, pgid))
        lv.size += size

    def _flush_branch(self, level: int) -> None:
        lv = self.levels[level]
        pgid = self.w._emit(_branch_page(lv.entries))
        first = lv.entries[0][0]
        lv.entries, lv.size = [], PAGE_HEADER.size
        self._push(level + 1, first, pgid)

    def finish(self) -> int:
        """Write what is pending, bottom up; returns the root page id."""
        if self.leaf or not self.levels:
            self._flush_leaf()
        level = 0
        while True:
            lv = self.levels[level]
            if level == len(self.levels) - 1 and len(lv.entries) == 1:
                return lv.entries[0][1]
            self._flush_branch(level)
            level += 1
