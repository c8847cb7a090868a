"""Crash safety: every write pyetcd acknowledged survives kill -9 and the power loss its store
is built to survive, and revisions carry on.

Several clients write concurrently (so their writes share group commits) while the member is
killed with SIGKILL mid-stream; after a restart every acknowledged put must be there with its
value and revision, and the next write must get a higher revision than any acknowledged one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from pyetcd import failpoints
from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support import CertPaths, Member, grpc_channel, start_member
from support.lmdbfile import undo_last_commit

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


def _write_until(member: Member, count: int, crash: Callable[[], None],
                 writers: int = WRITERS) -> dict[bytes, tuple[bytes, int]]:
    """Concurrent writers (their puts share turns) until ``count`` are acknowledged, then ``crash``."""
    acked: dict[bytes, tuple[bytes, int]] = {}
    stop = threading.Event()
    threads = [threading.Thread(target=_writer, args=(member, w, acked, stop)) for w in range(writers)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < count and time.monotonic() < deadline and member.proc is not None \
            and member.proc.poll() is None:
        time.sleep(0.05)
    crash()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= min(count, 100), "the writers did not get going"
    return dict(acked)


def _assert_all_there(member: Member, acked: dict[bytes, tuple[bytes, int]]) -> None:
    """After a restart: every acknowledged put with its value and revision, and revisions go on."""
    revisions = sorted(rev for _, rev in acked.values())
    assert len(set(revisions)) == len(revisions), "two acknowledged puts share a revision"
    member.start()
    with grpc_channel(member) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        got = kv.Range(rpc_pb2.RangeRequest(key=b"w", range_end=b"x"), timeout=10)
        stored = {kv_.key: (kv_.value, kv_.mod_revision) for kv_ in got.kvs}
        missing = [k for k, v in acked.items() if stored.get(k) != v]
        assert not missing, f"{len(missing)} acknowledged puts lost or changed, e.g. {missing[:3]}"
        after = kv.Put(rpc_pb2.PutRequest(key=b"after-restart", value=b"x"), timeout=10)
        assert after.header.revision > revisions[-1]
        assert got.header.revision >= revisions[-1]


def test_acknowledged_puts_survive_kill9(pyetcd_member: Member) -> None:
    acked = _write_until(pyetcd_member, 400, pyetcd_member.kill9)  # mid-stream: the writers are still sending
    assert len(acked) >= 400
    _assert_all_there(pyetcd_member, acked)


def test_a_power_loss_undoing_the_stores_last_commit_loses_no_acknowledged_put(
        tmp_path: Path, certs: CertPaths) -> None:
    """The store's metasync is off (storage/backend.py): a power loss may undo its last commit,
    and the raft log must still hold every entry that commit applied, however hard it compacts.
    The member crashes between a turn's two commits (the raft log's, which compacts, is durable;
    the store's is not), then its store file loses the last commit it had, as a power loss can."""
    _crash_lose_the_last_store_commit_and_restart(tmp_path, certs, "turn.between_commits=300>1*panic", WRITERS)


def test_a_lone_clients_answered_puts_survive_a_crash_before_the_store_commits(
        tmp_path: Path, certs: CertPaths) -> None:
    """A lone client's turns leave the store's transaction open and commit it up to 100 ms later
    (server/node_loop.py, storage/deferred.py): its answers rest on the raft log alone. The member
    crashes just before such a commit, with a tenth of a second of answered puts in no store
    commit at all; then, as a power loss can, the store file also loses the commit before. The
    raft log, compacted as hard as it goes, must still replay every one of them."""
    _crash_lose_the_last_store_commit_and_restart(tmp_path, certs, "turn.before_store_commit=5>1*panic", 1)


def _crash_lose_the_last_store_commit_and_restart(tmp_path: Path, certs: CertPaths, failpoint: str,
                                                  writers: int) -> None:
    """``writers`` put until ``failpoint`` crashes the member (its raft log compacting as hard as
    it goes); the store file then loses its last commit, as a power loss can; after a restart
    every acknowledged put must be there."""
    m = start_member("pyetcd", tmp_path / "m", certs,
                     extra_args=("--snapshot-count=1", "--experimental-snapshot-catchup-entries=1"),
                     env={"PYETCD_FAILPOINTS": failpoint})
    try:
        assert m.proc is not None
        acked = _write_until(m, 10_000, lambda: m.proc.wait(30), writers)  # type: ignore[union-attr]
        assert m.proc.returncode == failpoints.PANIC_STATUS, m.log_tail(20)
        undone, current = undo_last_commit(m.data_dir / "member" / "snap" / "data.mdb")
        assert undone > current > 0
        m.env = {}
        _assert_all_there(m, acked)
    finally:
        m.stop()
