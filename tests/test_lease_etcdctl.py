"""Leases through the real etcdctl 3.4, against real etcd and pyetcd: the same commands must
print the same things (ids aside, which each server chooses)."""

from __future__ import annotations

import re
import time

import pytest

from conftest import MemberFactory
from support import SERVER_KINDS, Background, Member, etcdctl

GRANTED = re.compile(r"^lease ([0-9a-f]{16}) granted with TTL\((\d+)s\)$")


def grant(m: Member, ttl: int) -> str:
    match = GRANTED.match(etcdctl(m, "lease", "grant", str(ttl)).stdout.strip())
    assert match, "unexpected grant output"
    assert int(match.group(2)) == max(ttl, 2)
    return match.group(1)


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_grant_list_timetolive_revoke(member_factory: MemberFactory, kind: str) -> None:
    m = member_factory(kind)
    lid = grant(m, 60)
    grant(m, 1)  # raised to the 2 s minimum
    assert etcdctl(m, "put", "--lease=" + lid, "k1", "v1").stdout == "OK\n"
    assert etcdctl(m, "put", "--lease=" + lid, "k2", "v2").stdout == "OK\n"
    listed = etcdctl(m, "lease", "list").stdout.splitlines()
    assert listed[0] == "found 2 leases" and lid in listed[1:]
    out = etcdctl(m, "lease", "timetolive", "--keys", lid).stdout.strip()
    match = re.fullmatch(rf"lease {lid} granted with TTL\(60s\), remaining\((\d+)s\), attached keys\(\[(.*)\]\)", out)
    assert match and 58 <= int(match.group(1)) <= 60
    assert sorted(match.group(2).split()) == ["k1", "k2"]
    assert etcdctl(m, "lease", "revoke", lid).stdout.strip() == f"lease {lid} revoked"
    assert etcdctl(m, "get", "--prefix", "k").stdout == ""
    assert etcdctl(m, "lease", "timetolive", lid).stdout.strip() == f"lease {lid} already expired"
    bad = etcdctl(m, "lease", "revoke", lid, check=False)
    assert bad.returncode != 0 and "etcdserver: requested lease not found" in bad.stderr
    bad = etcdctl(m, "put", "--lease=1234abcd", "k3", "v", check=False)
    assert bad.returncode != 0 and "etcdserver: requested lease not found" in bad.stderr


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_keep_alive(member_factory: MemberFactory, kind: str) -> None:
    m = member_factory(kind)
    lid = grant(m, 3)
    assert etcdctl(m, "lease", "keep-alive", "--once", lid).stdout.strip() == f"lease {lid} keepalived with TTL(3)"
    etcdctl(m, "put", "--lease=" + lid, "alive", "1")
    ka = Background(m, "lease", "keep-alive", lid)
    try:
        time.sleep(5)  # well past the 3 s TTL: the keep-alive stream holds the lease
        assert etcdctl(m, "get", "alive", "--print-value-only").stdout == "1\n"
        lines = ka.wait_lines(2)
        assert lines[0] == f"lease {lid} keepalived with TTL(3)" and len(set(lines)) == 1
    finally:
        ka.stop()
    once = etcdctl(m, "lease", "keep-alive", "--once", "1234abcd", check=False)
    assert once.returncode != 0 and "etcdserver: requested lease not found" in once.stderr


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_expired_key_delete_seen_by_watcher(member_factory: MemberFactory, kind: str) -> None:
    m = member_factory(kind)
    watch = Background(m, "watch", "--prefix", "exp/")
    try:
        time.sleep(1.0)  # the watch is registered before the writes
        lid = grant(m, 2)
        etcdctl(m, "put", "--lease=" + lid, "exp/a", "1")
        t0 = time.monotonic()
        lines = watch.wait_lines(6, timeout=8)
        took = time.monotonic() - t0
    finally:
        watch.stop()
    assert lines == ["PUT", "exp/a", "1", "DELETE", "exp/a", ""]
    assert took < 5.0  # a 2 s lease, expired by the leader within a few seconds
    assert etcdctl(m, "lease", "timetolive", lid).stdout.strip() == f"lease {lid} already expired"
