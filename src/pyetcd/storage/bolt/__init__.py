"""bbolt's file format, read and written without Go: etcd's backend and snapshot files are bbolt
databases (go.etcd.io/bbolt 1.3), and no maintained Python library reads or writes them.

A database is a sequence of fixed-size pages (4096 bytes here). Pages 0 and 1 are two copies of
the meta page (the newer valid one wins); it names the root bucket's page, the freelist page and
the high-water mark. Every bucket is a B+tree of branch and leaf pages; the root bucket's leaf
entries are the top-level buckets, flagged as buckets, whose values are a bucket header (root
page, sequence) — followed, for a small bucket, by its whole leaf page inline.

``page`` has the layouts, ``writer`` builds a database in one sequential pass (bulk-loading
sorted keys, memory bounded by the tree's height), ``reader`` walks one without loading it.
"""

from .page import BoltError
from .reader import BoltReader
from .writer import BoltWriter, Bucket

__all__ = ["BoltError", "BoltReader", "BoltWriter", "Bucket"]
