"""The bbolt writer and reader (storage/bolt) and etcd's WAL framing, against bbolt itself."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyetcd.storage.bolt import BoltError, BoltReader, BoltWriter, Bucket
from support.bboltcheck import bbolt_buckets, bbolt_check


def _random_rows(rnd: random.Random, n: int, sizes: tuple[int, ...]) -> list[tuple[bytes, bytes]]:
    keys = {rnd.randbytes(rnd.choice((1, 8, 17, 40))) for _ in range(n)}
    return [(k, rnd.randbytes(rnd.choice(sizes))) for k in sorted(keys)]


def _write(path: Path, buckets: dict[bytes, list[tuple[bytes, bytes | Bucket]]]) -> None:
    with path.open("wb") as f:
        w = BoltWriter(f)
        for name in sorted(buckets):
            w.bucket(name, buckets[name])
        assert w.close() == f.seek(0, 2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_written_file_passes_bbolt_check_and_reads_back(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    nested = [(b"inline", Bucket([(b"a", b"1")])), (b"plain", b"v"),
              (b"wide", Bucket(_random_rows(rnd, 400, (0, 30, 300))))]  # a list: iterable twice
    buckets: dict[bytes, list[tuple[bytes, bytes | Bucket]]] = {
        b"empty": [],
        b"key": list(_random_rows(rnd, 3000, (0, 10, 200, 5000, 70000))),  # overflow pages too
        b"meta": [(b"consistent_index", b"\0" * 7 + b"\x05")],  # small: stored inline
        b"nested": list(nested),
    }
    path = tmp_path / "t.db"
    _write(path, buckets)
    bbolt_check(path)
    wide = nested[2][1]
    assert isinstance(wide, Bucket)
    wide_rows = list(wide.items)
    # bbolt counts keys of nested buckets too
    assert bbolt_buckets(path) == {"empty": 0, "key": len(buckets[b"key"]), "meta": 1,
                                   "nested": 3 + 1 + len(wide_rows)}
    with BoltReader(path) as r:
        assert [n for n, _ in r.buckets()] == sorted(buckets)
        assert [(k, v) for k, v, _ in r.items(b"key")] == buckets[b"key"]
        assert list(r.items(b"empty")) == []
        top = {k: (v, is_bucket) for k, v, is_bucket in r.items(b"nested")}
        assert top[b"plain"] == (b"v", False)
        assert [(k, v) for k, v, _ in r.walk(top[b"inline"][0])] == [(b"a", b"1")]
        assert int.from_bytes(top[b"inline"][0][:8], "little") == 0  # root 0: an inline bucket
        assert [(k, v) for k, v, _ in r.walk(top[b"wide"][0])] == wide_rows


def test_keys_out_of_order_are_refused(tmp_path: Path) -> None:
    with (tmp_path / "t.db").open("wb") as f:
        w = BoltWriter(f)
        with pytest.raises(ValueError, match="increasing order"):
            w.bucket(b"b", [(b"2", b""), (b"1", b"")])


def test_damage_is_reported_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    _write(path, {b"key": list(_random_rows(random.Random(7), 2000, (100,)))})
    data = path.read_bytes()
    (tmp_path / "short.db").write_bytes(data[: len(data) // 2])
    with pytest.raises(BoltError, match="cut short"):
        BoltReader(tmp_path / "short.db")
    meta = bytearray(data)
    meta[16 + 20] ^= 0xFF  # page 0's meta: its checksum no longer matches; page 1's still does
    meta[4096 + 16 + 20] ^= 0xFF
    (tmp_path / "meta.db").write_bytes(bytes(meta))
    with pytest.raises(BoltError, match="checksum"):
        BoltReader(tmp_path / "meta.db")
    page = bytearray(data)
    page[3 * 4096 + 1] ^= 0x40  # a data page's id
    (tmp_path / "page.db").write_bytes(bytes(page))
    with BoltReader(tmp_path / "page.db") as r, pytest.raises(BoltError, match="page"):
        list(r.items(b"key"))
