"""Unit tests of the watch package's pure parts: wire encoding and the watcher index."""

from __future__ import annotations

import random

from pyetcd.api import kv_pb2, rpc_pb2
from pyetcd.watch import encode
from pyetcd.watch.group import WatcherGroup
from pyetcd.watch.watcher import DELETE, PUT, Watcher, prefix_end


def test_encoded_response_parses_as_watch_response() -> None:
    kv = kv_pb2.KeyValue(key=b"k", value=b"v" * 300, create_revision=3, mod_revision=7, version=2, lease=9)
    prev = kv_pb2.KeyValue(key=b"k", value=b"old", create_revision=3, mod_revision=5, version=1)
    events = encode.event(PUT, kv.SerializeToString(), prev.SerializeToString()) + encode.event(
        DELETE, kv_pb2.KeyValue(key=b"k", mod_revision=8).SerializeToString())
    raw = encode.response(encode.header(2**63 + 5, 17, 8, 4), -1, created=True, canceled=True, compact_revision=6,
                          cancel_reason="why", fragment=True, events=events)
    want = rpc_pb2.WatchResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=2**63 + 5, member_id=17, revision=8, raft_term=4), watch_id=-1,
        created=True, canceled=True, compact_revision=6, cancel_reason="why", fragment=True,
        events=[kv_pb2.Event(type=PUT, kv=kv, prev_kv=prev),
                kv_pb2.Event(type=DELETE, kv=kv_pb2.KeyValue(key=b"k", mod_revision=8))])
    assert rpc_pb2.WatchResponse.FromString(raw) == want
    assert raw == want.SerializeToString()  # byte for byte what protobuf writes
    assert encode.response(encode.header(0, 0, 0, 0), 0) == rpc_pb2.WatchResponse(
        header=rpc_pb2.ResponseHeader()).SerializeToString()


def test_fragments_split_below_the_limit() -> None:
    evs = [encode.event(PUT, kv_pb2.KeyValue(key=b"k%d" % i, value=b"x" * 100).SerializeToString()) for i in range(10)]
    hdr = encode.header(1, 2, 3, 4)
    parts = [rpc_pb2.WatchResponse.FromString(p) for p in encode.fragments(hdr, 5, evs, 400)]
    assert [p.fragment for p in parts] == [True] * (len(parts) - 1) + [False]
    assert [e.kv.key for p in parts for e in p.events] == [b"k%d" % i for i in range(10)]
    assert all(p.ByteSize() < 400 for p in parts)
    assert len(encode.fragments(hdr, 5, evs, 10_000)) == 1


def test_prefix_end() -> None:
    assert prefix_end(b"a") == b"b"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b""


def test_group_matches_like_brute_force() -> None:
    rng = random.Random(7)
    alphabet = [b"a", b"b", b"\xff", b"\x00"]
    keys = sorted({b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 3))) for _ in range(60)})
    group = WatcherGroup()
    watchers = []
    for i in range(300):
        k = rng.choice(keys)
        shape = rng.choice(["key", "prefix", "range", "from"])
        end = {"key": None, "prefix": prefix_end(k), "from": b"", "range": rng.choice(keys) + b"\x00"}[shape]
        w = Watcher(None, i, k, end)  # type: ignore[arg-type]
        watchers.append(w)
        group.add(w)
    for w in rng.sample(watchers, 100):
        assert group.remove(w)
        watchers.remove(w)
    assert len(group) == len(watchers) == 200
    for key in keys + [b"zz", b"\x00"]:
        found = [w for ws in group.match(key) for w in ws]
        assert len(found) == len(set(found))
        assert set(found) == {w for w in watchers if w.matches(key)}, key
    assert set(group) == set(watchers)


def test_progress_interval_flag_parses_go_durations() -> None:
    import pytest

    from pyetcd.cli.flags import FlagError, parse_duration, resolve, to_config

    assert [parse_duration(v) for v in ("100ms", "5s", "10m", "1m30s", "0", "1.5h")] == [0.1, 5.0, 600.0, 90.0, 0.0, 5400.0]
    for bad in ("", "5", "5x", "ms"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert to_config(resolve([], {}).values).watch_progress_notify_interval == 600.0  # etcd's 10m
    flag = "--experimental-watch-progress-notify-interval"
    assert to_config(resolve([flag, "250ms"], {}).values).watch_progress_notify_interval == 0.25
    env = {"ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL": "2s"}
    assert to_config(resolve([], env).values).watch_progress_notify_interval == 2.0
    with pytest.raises(FlagError, match="experimental-watch-progress-notify-interval"):
        resolve([flag, "soon"], {})
