"""The shared harness itself: ports, stop/kill/pause/restart by pid, start errors, clusters.

Every other real-process test trusts these helpers, so they are checked on real etcd; the process
lifecycle tests (restart keeps data, kill -9 loses nothing acknowledged) also run on pyetcd.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support import CertPaths, Member, MemberStartError, etcdctl, free_port, grpc_channel, start_cluster


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _get(m: Member, key: bytes, timeout: float = 5) -> list[bytes]:
    with grpc_channel(m) as ch:
        return [kv.value for kv in rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=key), timeout=timeout).kvs]


def _put(m: Member, key: bytes, value: bytes) -> bool:
    try:
        with grpc_channel(m) as ch:
            rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=key, value=value), timeout=2)
        return True
    except grpc.RpcError:  # e.g. no leader yet: etcd drops the proposal and the call times out
        return False


def _until(cond: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_free_ports_are_distinct_and_never_etcds_own() -> None:
    ports = [free_port() for _ in range(100)]
    assert len(set(ports)) == 100
    assert not {2379, 2380} & set(ports)


def test_stop_ends_the_process_and_frees_the_port(any_member: Member) -> None:
    assert any_member.running and _accepts(any_member.client_port)
    any_member.stop()
    assert not any_member.running and any_member.proc is not None and any_member.proc.returncode is not None
    assert not _accepts(any_member.client_port)
    any_member.stop()  # idempotent


def test_restart_keeps_data_and_address(any_member: Member) -> None:
    etcdctl(any_member, "put", "k", "before-restart")
    old_pid, url = any_member.pid, any_member.client_url
    any_member.restart()
    assert any_member.pid != old_pid and any_member.client_url == url
    assert _get(any_member, b"k") == [b"before-restart"]


def test_kill9_loses_nothing_acknowledged(any_member: Member) -> None:
    for i in range(20):
        etcdctl(any_member, "put", f"k{i}", str(i))
    any_member.kill9()
    assert not any_member.running and any_member.proc is not None and any_member.proc.returncode == -9
    any_member.restart()
    with grpc_channel(any_member) as ch:
        resp = rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"k", range_end=b"l", count_only=True))
    assert resp.count == 20


def test_pause_blocks_requests_until_resume(any_member: Member) -> None:
    any_member.pause()
    try:
        with pytest.raises(grpc.RpcError) as e:
            _get(any_member, b"k", timeout=1)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        any_member.resume()
    assert _get(any_member, b"k") == []


def test_stop_of_a_paused_member_is_prompt(any_member: Member) -> None:
    any_member.pause()
    t0 = time.monotonic()
    any_member.stop()
    assert time.monotonic() - t0 < 5 and not any_member.running


def test_start_failure_reports_the_log_tail(member_factory: Callable[..., Member]) -> None:
    with pytest.raises(MemberStartError) as e:
        member_factory("etcd", extra_args=("--no-such-flag",))
    msg = str(e.value)
    assert "exited with status" in msg and "no-such-flag" in msg and "command:" in msg


def test_three_member_real_etcd_cluster(tmp_path: Path, certs: CertPaths) -> None:
    members = start_cluster("etcd", tmp_path, certs, size=3)
    try:
        listed = etcdctl(members[0], "member", "list").stdout
        assert all(m.peer_url in listed for m in members), listed
        etcdctl(members[0], "put", "k", "replicated")
        assert _get(members[2], b"k") == [b"replicated"]
        members[1].kill9()  # quorum of 2 left: writes succeed once a leader is (re-)elected
        _until(lambda: _put(members[2], b"k", b"with-one-down"))
        members[1].restart()
        _until(lambda: _get(members[1], b"k") == [b"with-one-down"])
    finally:
        for m in members:
            m.stop()
