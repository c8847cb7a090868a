"""Read a bbolt database without loading it: the file is memory-mapped and buckets are walked
page by page in key order, so a multi-gigabyte backend costs page cache, not heap.

Every offset is bounds-checked: a damaged file raises BoltError naming the page, never an
IndexError or a silently wrong answer.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

from .page import (
    BRANCH_ELEMENT,
    BRANCH_PAGE,
    BUCKET_HEADER,
    BUCKET_LEAF,
    LEAF_ELEMENT,
    LEAF_PAGE,
    META_PAGE,
    PAGE_HEADER,
    PAGE_SIZE,
    BoltError,
    Meta,
)

Item = tuple[bytes, bytes, bool]  # key, value, is the value a bucket


class BoltReader:
    """An open bbolt file: ``buckets()``, ``items(name)``, ``walk(value)`` for nested buckets."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as f:
            size = f.seek(0, 2)
            if size < 2 * PAGE_SIZE:
                raise BoltError(f"{path}: {size} bytes is too small for a bbolt database")
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.meta = self._pick_meta()
        self.page_size = self.meta.page_size
        if self.meta.hwm * self.page_size > len(self._map):
            raise BoltError(f"{path}: file cut short: the database has {self.meta.hwm} pages of "
                            f"{self.page_size} bytes but the file holds {len(self._map)} bytes")

    def close(self) -> None:
        self._map.close()

    def __enter__(self) -> BoltReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pick_meta(self) -> Meta:
        """bbolt's rule: the valid meta with the higher txid (page size from meta 0, else 1)."""
        found: list[Meta] = []
        errs: list[str] = []
        for pgid in (0, 1):
            try:
                page_size = found[0].page_size if found else PAGE_SIZE
                off = pgid * page_size
                _, flags, _, _ = PAGE_HEADER.unpack_from(self._map, off)
                if not flags & META_PAGE:
                    raise BoltError(f"page {pgid} is not a meta page")
                found.append(Meta.decode(self._map[off + PAGE_HEADER.size: off + PAGE_HEADER.size + 64]))
            except BoltError as e:
                errs.append(str(e))
        if not found:
            raise BoltError(f"{self.path}: invalid database: {'; '.join(errs)}")
        return max(found, key=lambda m: m.txid)

    def _page(self, pgid: int) -> tuple[int, int, int, int]:
        """(offset, flags, count, overflow) of a page, checked against the database's extent."""
        if pgid < 2 or pgid >= self.meta.hwm:
            raise BoltError(f"{self.path}: page {pgid} out of bounds (high-water mark {self.meta.hwm})")
        off = pgid * self.page_size
        pid, flags, count, overflow = PAGE_HEADER.unpack_from(self._map, off)
        if pid != pgid:
            raise BoltError(f"{self.path}: page {pgid} says it is page {pid}: the file is damaged")
        if pgid + overflow >= self.meta.hwm:
            raise BoltError(f"{self.path}: page {pgid} overflows past the end of the database")
        return off, flags, count, overflow

    def _slice(self, buf: bytes | mmap.mmap, start: int, length: int, end: int, where: str) -> bytes:
        if start < 0 or start + length > end:
            raise BoltError(f"{self.path}: {where}: element points outside its page")
        return bytes(buf[start:start + length])

    # -- walking -------------------------------------------------------------------------------
    def buckets(self) -> Iterator[tuple[bytes, bytes]]:
        """Top-level buckets: (name, bucket value)."""
        for key, value, is_bucket in self._tree(self.meta.root):
            if not is_bucket:
                raise BoltError(f"{self.path}: top-level key {key!r} is not a bucket")
            yield key, value

    def bucket(self, name: bytes) -> bytes | None:
        for key, value in self.buckets():
            if key == name:
                return value
        return None

    def items(self, name: bytes) -> Iterator[Item]:
        """A top-level bucket's items in key order (none if the bucket is absent)."""
        value = self.bucket(name)
        if value is not None:
            yield from self.walk(value)

    def walk(self, bucket_value: bytes) -> Iterator[Item]:
        """The items of the bucket whose value (header, maybe an inline page) is given."""
        if len(bucket_value) < BUCKET_HEADER.size:
            raise BoltError(f"{self.path}: bucket value of {len(bucket_value)} bytes is too short")
        root, _ = BUCKET_HEADER.unpack_from(bucket_value)
        if root:
            yield from self._tree(root)
            return
        inline = bucket_value[BUCKET_HEADER.size:]
        _, flags, count, _ = PAGE_HEADER.unpack_from(inline)
        if not flags & LEAF_PAGE:
            raise BoltError(f"{self.path}: inline bucket page is not a leaf")
        yield from self._leaf(inline, 0, count, len(inline), "inline bucket")

    def _tree(self, pgid: int, depth: int = 0) -> Iterator[Item]:
        if depth > 64:
            raise BoltError(f"{self.path}: page {pgid}: tree deeper than any real database (a cycle?)")
        off, flags, count, overflow = self._page(pgid)
        end = off + (overflow + 1) * self.page_size
        if flags & LEAF_PAGE:
            yield from self._leaf(self._map, off, count, end, f"page {pgid}")
        elif flags & BRANCH_PAGE:
            for i in range(count):
                at = off + PAGE_HEADER.size + i * BRANCH_ELEMENT.size
                _, _, child = BRANCH_ELEMENT.unpack_from(self._map, at)
                yield from self._tree(child, depth + 1)
        else:
            raise BoltError(f"{self.path}: page {pgid}: expected a branch or leaf page, found flags {flags:#x}")

    def _leaf(self, buf: bytes | mmap.mmap, off: int, count: int, end: int, where: str) -> Iterator[Item]:
        for i in range(count):
            at = off + PAGE_HEADER.size + i * LEAF_ELEMENT.size
            if at + LEAF_ELEMENT.size > end:
                raise BoltError(f"{self.path}: {where}: more elements than fit the page")
            flags, pos, ksize, vsize = LEAF_ELEMENT.unpack_from(buf, at)
            key = self._slice(buf, at + pos, ksize, end, where)
            value = self._slice(buf, at + pos + ksize, vsize, end, where)
            yield key, value, bool(flags & BUCKET_LEAF)
