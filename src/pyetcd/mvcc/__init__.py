"""The MVCC key-value store: every revision kept in LMDB until compaction."""

from .index import KeyIndex, TreeIndex
from .revision import Revision, decode_revision, encode_revision
from .store import Change, KVStore, RangeResult

__all__ = ["Change", "KVStore", "KeyIndex", "RangeResult", "Revision", "TreeIndex", "decode_revision",
           "encode_revision"]
