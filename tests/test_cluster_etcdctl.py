"""The ops guide's three-endpoint commands, verbatim, with the real etcdctl over mutual TLS:
three pyetcd members side by side with three real etcd members.

Outputs must be equal once ids, ports, sizes, raft indexes and table padding are masked (and
table rows sorted: rows come in member-id order, and ids differ). Each check also asserts what
the output must say, so two broken outputs cannot pass by being equal.
"""

from __future__ import annotations

import json
import re

import pytest

from support import Member, etcdctl
from support.masks import mask

pytestmark = pytest.mark.cluster

_SIZES = (re.compile(r"\b\d+(\.\d+)? [kMG]?B\b"), "<SIZE>")
_NUMBERS_IN_CELLS = (re.compile(r"\| +\d+ +(?=\|)"), "| <N> ")
_VERSION = (re.compile(r"\b3\.\d+\.\d+\b"), "<VERSION>")  # real etcd here is 3.4; pyetcd serves 3.5


def _rows(text: str) -> list[str]:
    return sorted(mask(text, _SIZES, _NUMBERS_IN_CELLS, _VERSION).splitlines())


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Member], list[Member]]:
    from support import CertPaths, start_cluster

    base = tmp_path_factory.mktemp("clusters")
    certs = CertPaths.create(base / "certs")
    real = start_cluster("etcd", base / "etcd", certs, size=3)
    try:
        py = start_cluster("pyetcd", base / "pyetcd", certs, size=3)
    except BaseException:
        for m in real:
            m.stop()
        raise
    yield real, py  # type: ignore[misc]
    for m in [*real, *py]:
        m.stop()


def both(clusters: tuple[list[Member], list[Member]], *args: str, at: int | None = None,
         rows: bool = False, stream: str = "stdout") -> tuple[str, str]:
    """One etcdctl command against both clusters (all three endpoints, or member ``at``);
    ``stream`` is where etcdctl prints the result (``endpoint health`` uses stderr)."""
    real, py = clusters
    a = getattr(etcdctl(real if at is None else real[at], *args), stream)
    b = getattr(etcdctl(py if at is None else py[at], *args), stream)
    if rows:
        assert _rows(b) == _rows(a), f"etcdctl {' '.join(args)}\nreal:\n{a}\npyetcd:\n{b}"
    else:
        assert mask(b) == mask(a), f"etcdctl {' '.join(args)}\nreal:\n{a}\npyetcd:\n{b}"
    return a, b


def test_member_list_table(clusters: tuple[list[Member], list[Member]]) -> None:
    _, out = both(clusters, "member", "list", "-w", "table", rows=True)
    for name in ("m0", "m1", "m2"):
        assert re.search(rf"\| +started +\| +{name} +\|", out)
    assert out.count("| false |") + out.count("|      false |") >= 3


def test_endpoint_health_every_member(clusters: tuple[list[Member], list[Member]]) -> None:
    _, out = both(clusters, "endpoint", "health", rows=True, stream="stderr")
    assert out.count("is healthy: successfully committed proposal") == 3


def test_endpoint_status_exactly_one_leader(clusters: tuple[list[Member], list[Member]]) -> None:
    _, py = clusters
    both(clusters, "endpoint", "status", "-w", "table", rows=True)
    doc = json.loads(etcdctl(py, "endpoint", "status", "-w", "json").stdout)
    leaders = {d["Status"]["leader"] for d in doc}
    assert len(leaders) == 1 and leaders != {0}
    assert sum(d["Status"]["header"]["member_id"] == d["Status"]["leader"] for d in doc) == 1
    assert {d["Status"]["raftAppliedIndex"] > 0 for d in doc} == {True}


def test_put_on_one_member_get_on_another(clusters: tuple[list[Member], list[Member]]) -> None:
    _, out = both(clusters, "put", "foo", "bar", at=0)
    assert out == "OK\n"
    both(clusters, "put", "foo1", "bar1", at=1)
    both(clusters, "put", "foo2", "bar2", at=2)
    for i in range(3):
        _, out = both(clusters, "get", "foo", at=i)
        assert out == "foo\nbar\n"
    _, out = both(clusters, "get", "--prefix", "foo")
    assert out == "foo\nbar\nfoo1\nbar1\nfoo2\nbar2\n"
    _, out = both(clusters, "get", "--prefix", "--keys-only", "foo", at=2)
    assert out.split() == ["foo", "foo1", "foo2"]
    _, out = both(clusters, "get", "--prefix", "foo", "--consistency", "s", at=1)
    assert out.split() == ["foo", "bar", "foo1", "bar1", "foo2", "bar2"]
    _, out = both(clusters, "del", "--prefix", "foo", at=1)
    assert out == "3\n"
    for i in range(3):
        _, out = both(clusters, "get", "--prefix", "foo", at=i)
        assert out == ""


def test_leases_and_lock_from_a_follower(clusters: tuple[list[Member], list[Member]]) -> None:
    _, py = clusters
    status = json.loads(etcdctl(py, "endpoint", "status", "-w", "json").stdout)
    follower = next(i for i, d in enumerate(status) if d["Status"]["header"]["member_id"] != d["Status"]["leader"])
    granted = etcdctl(py[follower], "lease", "grant", "60").stdout
    lease = re.search(r"lease ([0-9a-f]+) granted", granted)
    assert lease, granted
    out = etcdctl(py[follower], "lease", "keep-alive", "--once", lease.group(1)).stdout
    assert f"lease {lease.group(1)} keepalived with TTL(60)" in out
    ttl = etcdctl(py[follower], "lease", "timetolive", lease.group(1)).stdout
    assert re.search(r"granted with TTL\(60s\), remaining\((5\d|60)s\)", ttl), ttl
    assert lease.group(1) in etcdctl(py[(follower + 1) % 3], "lease", "list").stdout
    etcdctl(py[follower], "lease", "revoke", lease.group(1))
    assert "already expired" in etcdctl(py[follower], "lease", "timetolive", lease.group(1)).stdout
