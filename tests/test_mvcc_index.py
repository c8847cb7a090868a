"""The packed key index against a plain model: random puts, deletes, multi-op txns and compactions
on a small key space; every revision still readable is read back, live and after a reload."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyetcd import errors
from pyetcd.api import kv_pb2
from pyetcd.mvcc import KVStore
from pyetcd.mvcc.index import KeyIndex, packed_alive
from pyetcd.storage.backend import Backend

KEYS = [b"k%d" % i for i in range(12)]
Model = dict[bytes, tuple[bytes, int, int, int, int]]  # key -> value, create, mod, version, lease


def _apply(kv: KVStore, backend: Backend, rnd: random.Random, states: dict[int, Model]) -> None:
    """One batch of one etcd txn with 1-3 random puts/deletes; records the state it leads to."""
    txn = backend.begin_write()
    w = kv.writer(txn)
    t = w.begin()
    state = dict(states[w.rev])
    rev = w.rev + 1
    for _ in range(rnd.randint(1, 3)):
        key = rnd.choice(KEYS)
        if rnd.random() < 0.25:
            end = None if rnd.random() < 0.5 else rnd.choice(KEYS)
            t.delete_range(key, end)
            doomed = [k for k in state if (k == key if end is None else key <= k < end)]
            for k in doomed:
                del state[k]
        else:
            value, lease = b"v%d" % rnd.randrange(1000), rnd.choice([0, 0, 7])
            t.put(key, value, lease)
            old = state.get(key)
            state[key] = (value, old[1] if old else rev, rev, old[3] + 1 if old else 1, lease)
    if t.end():
        states[rev] = state
    if rnd.random() < 0.1 and w.rev > 2:
        at = rnd.randint(max(kv.compact_rev, 1) + 1, w.rev)
        w.compact(at)
    w.finish()
    txn.commit()
    kv.publish(w)


def _check(kv: KVStore, states: dict[int, Model]) -> None:
    for rev in range(max(kv.compact_rev, 1), kv.current_rev + 1):
        want = states[max(r for r in states if r <= rev)]
        got = {}
        for raw in kv.range(b"", b"", rev).kvs:
            m = kv_pb2.KeyValue.FromString(raw)
            got[m.key] = (m.value, m.create_revision, m.mod_revision, m.version, m.lease)
        assert got == want, f"at revision {rev}"
        assert kv.range(b"k1", b"k5", rev, count_only=True).count == sum(1 for k in want if b"k1" <= k < b"k5")
        limited = kv.range(b"", b"", rev, limit=2)
        assert limited.count == len(want) and len(limited.kvs) == min(2, len(want))
    if kv.compact_rev > 1:
        with pytest.raises(errors.ErrCompacted):
            kv.range(b"", b"", kv.compact_rev - 1)
    live = states[kv.current_rev]
    assert kv.index.live_count() == len(live)
    assert dict(kv.index.leases()) == {k: v[4] for k, v in live.items() if v[4]}


@pytest.mark.parametrize("seed", range(6))
def test_random_history_matches_the_model_live_and_after_reload(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    backend = Backend(tmp_path / "db", quota_bytes=1 << 26)
    kv = KVStore(backend)
    states: dict[int, Model] = {1: {}}
    for _ in range(150):
        _apply(kv, backend, rnd, states)
    _check(kv, states)
    before = {k: kv.index.raw(k) for k in kv.index.keys_in_range(b"", b"")}
    kv.reload()
    _check(kv, states)
    for k, raw in before.items():  # a reload may drop the history of compacted deletions only
        again = kv.index.raw(k)
        assert again == raw or (again is None and raw is not None and not packed_alive(raw))


def test_pack_round_trip_keeps_generations_and_lease() -> None:
    ki = KeyIndex(b"x")
    from pyetcd.mvcc import Revision
    ki.put(Revision(2, 0))
    ki.put(Revision(3, 1))
    ki.tombstone(Revision(4, 0))
    ki.put(Revision(6, 0))
    ki.lease = 99
    again = KeyIndex.unpack(b"x", ki.pack())
    assert again.lease == 99 and again.alive and packed_alive(ki.pack())
    assert [(g.created.main if g.created else None, g.ver, g.revs) for g in again.generations] == \
        [(2, 3, [(2, 0), (3, 1), (4, 0)]), (6, 1, [(6, 0)])]
    assert [again.get(r) for r in range(1, 8)] == [None, (2, 0), (3, 1), None, None, (6, 0), (6, 0)]


def test_packed_key_matches_the_object_form_over_a_long_history() -> None:
    from pyetcd.mvcc import Revision
    from pyetcd.mvcc.index import PackedKey, packed_revision_at
    rnd = random.Random(7)
    ki, pk = KeyIndex(b"x"), PackedKey(b"x")
    for main in range(2, 400):
        if ki.alive and rnd.random() < 0.1:
            ki.tombstone(Revision(main, 0))
            pk.tombstone(Revision(main, 0))
        else:
            ki.put(Revision(main, rnd.randrange(3)))
            pk.put(Revision(main, ki.generations[-1].revs[-1].sub))
    raw = pk.pack()
    assert raw == ki.pack() and pk.alive == ki.alive
    assert [packed_revision_at(raw, r) for r in range(0, 402)] == [ki.get(r) for r in range(0, 402)]
    assert PackedKey(b"x", raw).created_and_version() == pk.created_and_version()
