"""The MVCC store in-process: revisions, history, compaction, and reloading from LMDB."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyetcd import errors
from pyetcd.api import kv_pb2
from pyetcd.mvcc import KVStore
from pyetcd.storage.backend import Backend


class Store:
    """A KVStore with a helper to run one etcd txn per call, committed and published."""

    def __init__(self, path: Path) -> None:
        self.backend = Backend(path, quota_bytes=1 << 26)
        self.kv = KVStore(self.backend)

    def write(self, fn):  # type: ignore[no-untyped-def]
        txn = self.backend.begin_write()
        w = self.kv.writer(txn)
        result = fn(w)
        w.finish()
        txn.commit()
        self.kv.publish(w)
        return result

    def put(self, key: bytes, value: bytes) -> int:
        def op(w):  # type: ignore[no-untyped-def]
            t = w.begin()
            rev = t.put(key, value, 0)
            t.end()
            return rev
        return self.write(op)  # type: ignore[no-any-return]

    def delete(self, key: bytes, end: bytes | None = None) -> int:
        def op(w):  # type: ignore[no-untyped-def]
            t = w.begin()
            n, _ = t.delete_range(key, end)
            t.end()
            return n
        return self.write(op)  # type: ignore[no-any-return]

    def get(self, key: bytes, rev: int = 0) -> kv_pb2.KeyValue | None:
        rr = self.kv.range(key, None, rev)
        return kv_pb2.KeyValue.FromString(rr.kvs[0]) if rr.kvs else None


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db")


def test_revisions_versions_and_history(store: Store) -> None:
    assert store.kv.current_rev == 1
    assert store.put(b"a", b"1") == 2
    assert store.put(b"a", b"2") == 3
    assert store.delete(b"a") == 1
    assert store.put(b"a", b"3") == 5
    kv = store.get(b"a")
    assert kv is not None and (kv.create_revision, kv.mod_revision, kv.version, kv.value) == (5, 5, 1, b"3")
    old = store.get(b"a", 3)
    assert old is not None and (old.create_revision, old.version, old.value) == (2, 2, b"2")
    assert store.get(b"a", 4) is None  # deleted at 4
    assert [(c.type, c.rev) for c in store.kv.history(2, 5)] == [(0, 2), (0, 3), (1, 4), (0, 5)]


def test_compaction_keeps_what_reads_need(store: Store) -> None:
    for v in (b"1", b"2", b"3"):
        store.put(b"k", v)  # revs 2, 3, 4
    store.put(b"gone", b"x")  # 5
    store.delete(b"gone")  # 6
    store.write(lambda w: w.compact(5))
    assert store.get(b"k", 5) is not None and store.get(b"k", 5).value == b"3"  # type: ignore[union-attr]
    with pytest.raises(errors.ErrCompacted):
        store.get(b"k", 4)
    with pytest.raises(errors.ErrCompacted):
        store.write(lambda w: w.compact(5))
    with pytest.raises(errors.ErrFutureRev):
        store.write(lambda w: w.compact(100))


def test_compacting_at_the_last_revision_after_deleting_everything(store: Store) -> None:
    """Regression: the compaction scan deleted the last row and then read past the end."""
    for i in range(5):
        store.put(b"k%d" % i, b"v")
    store.delete(b"k", b"l")
    rev = store.kv.current_rev
    assert store.write(lambda w: w.compact(rev)) == rev
    assert store.kv.range(b"", b"").kvs == []
    assert store.put(b"after", b"1") == rev + 1


def test_reload_rebuilds_the_index_and_revision(store: Store, tmp_path: Path) -> None:
    store.put(b"a", b"1")
    store.put(b"b", b"1")
    store.put(b"a", b"2")
    store.delete(b"b")
    store.write(lambda w: w.compact(3))
    store.backend.close()
    again = Store(tmp_path / "db")
    assert again.kv.current_rev == 5 and again.kv.compact_rev == 3
    kv = again.get(b"a")
    assert kv is not None and (kv.version, kv.create_revision) == (2, 2)
    assert again.get(b"b") is None
    assert again.put(b"a", b"3") == 6
    kv = again.get(b"a")
    assert kv is not None and kv.version == 3
