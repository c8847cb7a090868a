"""Reading etcd's WAL: a later entry at an index already seen drops it and every later one (a new
leader overwrote the suffix), and a long log is read in one pass (a million entries converted)."""

from __future__ import annotations

from pyetcd.storage.etcdwal.wal import ENTRY, WalContents, _apply
from pyetcd.watch.encode import varint


def _entry(term: int, index: int) -> bytes:
    data = b"d%d" % term
    return b"\x08\x00\x10" + varint(term) + b"\x18" + varint(index) + b"\x22" + varint(len(data)) + data


def test_an_overwritten_suffix_is_dropped() -> None:
    out = WalContents()
    for index in (1, 2, 3, 4):
        _apply(ENTRY, _entry(1, index), out)
    _apply(ENTRY, _entry(2, 2), out)
    assert [(e.index, e.term) for e in out.entries.values()] == [(1, 1), (2, 2)]
    _apply(ENTRY, _entry(2, 3), out)
    assert [(e.index, e.term) for e in out.entries.values()] == [(1, 1), (2, 2), (3, 2)]
    assert out.term_at(3) == 2 and out.term_at(4) is None


def test_many_entries_in_order_are_all_kept() -> None:
    out = WalContents()
    for index in range(1, 200_001):  # was quadratic: a max() over every entry per entry
        _apply(ENTRY, _entry(1, index), out)
    assert len(out.entries) == 200_000 and next(reversed(out.entries)) == 200_000
