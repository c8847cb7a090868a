"""Crash safety: every write pyetcd acknowledged survives kill -9, and revisions carry on.

Several clients write concurrently (so their writes share group commits) while the member is
killed with SIGKILL mid-stream; after a restart every acknowledged put must be there with its
value and revision, and the next write must get a higher revision than any acknowledged one.
"""

from __future__ import annotations

import threading
import time

import grpc

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support import Member, grpc_channel

WRITERS = 8


def _writer(member: Member, wid: int, acked: dict[bytes, tuple[bytes, int]], stop: threading.Event) -> None:
    channel = grpc_channel(member)
    kv = rpc_pb2_grpc.KVStub(channel)
    i = 0
    try:
        while not stop.is_set():
            key, value = f"w{wid}/k{i:06d}".encode(), f"value-{wid}-{i}".encode()
            try:
                resp = kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=5)
            except grpc.RpcError:
                return  # the member died: whatever was not acknowledged may be lost
            acked[key] = (value, resp.header.revision)
            i += 1
    finally:
        channel.close()


def test_acknowledged_puts_survive_kill9(pyetcd_member: Member) -> None:
    acked: dict[bytes, tuple[bytes, int]] = {}
    stop = threading.Event()
    threads = [threading.Thread(target=_writer, args=(pyetcd_member, w, acked, stop)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 400 and time.monotonic() < deadline:
        time.sleep(0.05)
    pyetcd_member.kill9()  # mid-stream: the writers are still sending
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 400, "the writers did not get going"
    revisions = sorted(rev for _, rev in acked.values())
    assert len(set(revisions)) == len(revisions), "two acknowledged puts share a revision"

    pyetcd_member.start()
    with grpc_channel(pyetcd_member) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        got = kv.Range(rpc_pb2.RangeRequest(key=b"w", range_end=b"x"), timeout=10)
        stored = {kv_.key: (kv_.value, kv_.mod_revision) for kv_ in got.kvs}
        missing = [k for k, v in acked.items() if stored.get(k) != v]
        assert not missing, f"{len(missing)} acknowledged puts lost or changed, e.g. {missing[:3]}"
        after = kv.Put(rpc_pb2.PutRequest(key=b"after-restart", value=b"x"), timeout=10)
        assert after.header.revision > revisions[-1]
        assert got.header.revision >= revisions[-1]
