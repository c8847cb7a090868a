"""An LMDB file as a power loss can leave it: the last commit's meta page never reached the disk.

With ``metasync`` off (the key-value store, storage/backend.py) a commit flushes its data pages
but not the meta page that makes it current; only the next commit's flush does. A power loss
right after a commit can therefore bring the file back to the commit before. A test cannot cut
the power, but it can make the file look exactly so: LMDB keeps two meta pages and opens the
one with the higher transaction id, so lowering the newer one's id to 0 makes the older current.
"""

from __future__ import annotations

import struct
from pathlib import Path

# LMDB's on-disk layout (lmdb/mdb.c): a 16-byte page header, then MDB_meta
_FLAGS = 10  # page header: mp_flags (uint16)
_P_META = 0x08
_MAGIC = 16  # MDB_meta.mm_magic (uint32)
_MDB_MAGIC = 0xBEEFC0DE
_PAGE_SIZE = 40  # mm_dbs[FREE_DBI].md_pad holds the page size (uint32)
_TXNID = 144  # mm_txnid (uint64): after magic, version, address, mapsize, two MDB_db and last_pg


def _meta_txnid(raw: bytes, offset: int) -> int:
    flags = struct.unpack_from("<H", raw, offset + _FLAGS)[0]
    magic = struct.unpack_from("<I", raw, offset + _MAGIC)[0]
    if not flags & _P_META or magic != _MDB_MAGIC:
        raise ValueError(f"no LMDB meta page at offset {offset}")
    return int(struct.unpack_from("<Q", raw, offset + _TXNID)[0])


def undo_last_commit(data_file: Path) -> tuple[int, int]:
    """Make the previous commit current again; returns (the txn id undone, the one now current)."""
    with data_file.open("r+b") as f:
        head = f.read(4096)
        page_size = struct.unpack_from("<I", head, _PAGE_SIZE)[0]
        f.seek(0)
        raw = f.read(2 * page_size)
        ids = [_meta_txnid(raw, 0), _meta_txnid(raw, page_size)]
        newer = 0 if ids[0] > ids[1] else 1
        f.seek(newer * page_size + _TXNID)
        f.write(struct.pack("<Q", 0))
    return ids[newer], ids[1 - newer]
