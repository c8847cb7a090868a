"""The real etcdctl 3.4 against pyetcd over mutual TLS, side by side with real etcd.

Every command of an etcd ops guide's KV chapter runs against a fresh real etcd and a fresh
pyetcd; their outputs must be identical once the parts that legitimately differ (member and
cluster ids, ports, sizes, timings, raft indexes, the server version) are masked. Each check
also asserts what the output must contain, so the comparison cannot pass on two broken outputs.
"""

from __future__ import annotations

import json
import re

import pytest

from pyetcd import ETCD_API_VERSION
from support import Member, etcdctl
from support.masks import mask


def both(real: Member, py: Member, *args: str, input: str | None = None) -> tuple[str, str]:
    """Run one etcdctl command against both servers; outputs must match after masking."""
    a = etcdctl(real, *args, input=input)
    b = etcdctl(py, *args, input=input)
    assert mask(b.stdout) == mask(a.stdout), f"etcdctl {' '.join(args)}"
    return a.stdout, b.stdout


@pytest.fixture
def pair(member_factory: object) -> tuple[Member, Member]:
    return member_factory("etcd", name="m-etcd"), member_factory("pyetcd", name="m-pyet")  # type: ignore[operator]


def test_put_get_delete_like_etcd(pair: tuple[Member, Member]) -> None:
    real, py = pair
    _, out = both(real, py, "put", "foo", "bar")
    assert out == "OK\n"
    both(real, py, "put", "foo1", "bar1")
    both(real, py, "put", "foo2", "bar2")
    both(real, py, "put", "zoo", "animal")
    _, out = both(real, py, "get", "foo")
    assert out == "foo\nbar\n"
    _, out = both(real, py, "get", "--prefix", "foo")
    assert out == "foo\nbar\nfoo1\nbar1\nfoo2\nbar2\n"
    _, out = both(real, py, "get", "--prefix", "--keys-only", "foo")
    assert out.split() == ["foo", "foo1", "foo2"]
    both(real, py, "get", "foo", "foo2")  # a range [foo, foo2)
    both(real, py, "get", "--from-key", "foo1")
    both(real, py, "get", "--prefix", "foo", "--limit", "2")
    both(real, py, "get", "--prefix", "foo", "--sort-by", "MODIFY", "--order", "DESCEND")
    both(real, py, "get", "--prefix", "foo", "--keys-only", "-w", "json")
    _, out = both(real, py, "get", "foo", "-w", "json")
    doc = json.loads(out)
    assert doc["kvs"][0]["create_revision"] == 2 and doc["header"]["revision"] == 5
    _, out = both(real, py, "put", "foo", "baz", "--prev-kv")
    assert out == "OK\nfoo\nbar\n"
    both(real, py, "get", "foo", "--rev", "2")
    _, out = both(real, py, "del", "--prefix", "foo")
    assert out == "3\n"
    _, out = both(real, py, "del", "nothing-here")
    assert out == "0\n"
    both(real, py, "get", "--prefix", "", "-w", "json")


def test_txn_from_stdin_like_etcd(pair: tuple[Member, Member]) -> None:
    real, py = pair
    both(real, py, "put", "key1", "1")
    script = 'value("key1") = "1"\n\nput key2 two\nget key1\n\nput key3 three\n\n'
    _, out = both(real, py, "txn", input=script)
    assert out.startswith("SUCCESS\n")
    script = 'mod("key1") > "100"\n\nput key2 never\n\ndel key1\nget key2\n\n'
    _, out = both(real, py, "txn", input=script)
    assert out.startswith("FAILURE\n")
    both(real, py, "txn", "-w", "json", input='version("key2") = "1"\n\nget key2\n\n\n')


def test_compaction_like_etcd(pair: tuple[Member, Member]) -> None:
    real, py = pair
    for i in range(5):
        both(real, py, "put", "k", f"v{i}")
    _, out = both(real, py, "compaction", "4")
    assert out == "compacted revision 4\n"
    both(real, py, "get", "k", "--rev", "4")
    for m in pair:
        res = etcdctl(m, "get", "k", "--rev", "3", check=False)
        assert res.returncode != 0
        assert "required revision has been compacted" in res.stderr
    _, out = both(real, py, "compaction", "--physical", "5")
    assert out == "compacted revision 5\n"


def test_cluster_commands_show_this_member(pair: tuple[Member, Member]) -> None:
    real, py = pair
    _, out = both(real, py, "member", "list", "-w", "table")
    assert "started" in out and py.name in out
    health = etcdctl(py, "endpoint", "health").stderr + etcdctl(py, "endpoint", "health").stdout
    assert f"{py.client_url} is healthy: successfully committed proposal" in health
    status = etcdctl(py, "endpoint", "status", "-w", "json").stdout
    doc = json.loads(status)[0]
    st = doc["Status"]
    assert doc["Endpoint"] == py.client_url
    assert st["leader"] == st["header"]["member_id"]
    assert st["raftIndex"] >= 1 and st["raftAppliedIndex"] == st["raftIndex"] and st["raftTerm"] >= 1
    assert st["dbSize"] > 0 and 0 < st["dbSizeInUse"] <= st["dbSize"]
    table = etcdctl(py, "endpoint", "status", "-w", "table").stdout
    version = re.escape(ETCD_API_VERSION)  # 3.5.13: see pyetcd/__init__.py
    assert re.search(r"\| " + re.escape(py.client_url) + r" \| +[0-9a-f]{12,16} \| +" + version + r" \| .* \| +true \| +false \|",
                     table), table


def test_errors_like_etcd(pair: tuple[Member, Member]) -> None:
    real, py = pair
    both(real, py, "put", "a", "1")
    for args in (["get", "a", "--rev", "100"], ["put", "missing", "--ignore-value"], ["compaction", "100"]):
        r, p = etcdctl(real, *args, check=False), etcdctl(py, *args, check=False)
        # the client's own retry log lines carry timestamps and ids: compare etcdctl's verdict
        r_err = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
        p_err = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
        assert (p.returncode, p_err) == (r.returncode, r_err), args
        assert p.returncode != 0 and p_err and "etcdserver:" in p_err[0]


def test_hashkv_equals_etcds_for_the_same_history(pair: tuple[Member, Member]) -> None:
    """Our key bucket rows are byte-identical to etcd's, so HashKV agrees: an operator's
    consistency check works across the two."""
    real, py = pair
    for i in range(6):
        both(real, py, "put", f"k{i % 3}", f"value-{i}")
    both(real, py, "del", "k1")
    both(real, py, "txn", input='\n\nput k5 five\nput k6 six\n\n\n')
    _, out = both(real, py, "endpoint", "hashkv", "-w", "json")
    assert json.loads(out)[0]["HashKV"]["hash"] != 0
    both(real, py, "compaction", "5")
    _, out = both(real, py, "endpoint", "hashkv")
    assert out.strip().endswith(tuple("0123456789"))


def test_member_update_and_add_like_etcd(pair: tuple[Member, Member]) -> None:
    real, py = pair
    ids = {m: etcdctl(m, "member", "list").stdout.split(",")[0] for m in pair}
    for m in pair:
        out = etcdctl(m, "member", "update", ids[m], "--peer-urls=http://localhost:31999").stdout
        assert re.match(rf"Member +{ids[m]} updated in cluster ", out), out  # etcdctl pads ids to 16
        assert "http://localhost:31999" in etcdctl(m, "member", "list").stdout
    for args in (["member", "update", "1234", "--peer-urls=http://localhost:31998"],
                 ["member", "remove", "1234"]):
        r, p = etcdctl(real, *args, check=False), etcdctl(py, *args, check=False)
        assert p.returncode == r.returncode != 0
        assert p.stderr.splitlines()[-1] == r.stderr.splitlines()[-1] == "Error: etcdserver: member not found"
    # adding a voter to a one-member cluster is allowed (etcd's restore case); it then waits for it
    outs = [etcdctl(m, "member", "add", "newmember", "--peer-urls=http://localhost:31997").stdout for m in pair]

    def lines(out: str) -> list[object]:  # the cluster line lists members by (random) id: compare as sets
        return sorted(str(sorted(x.split("=", 1)[1].strip('"').split(",")))
                      if x.startswith("ETCD_INITIAL_CLUSTER=") else x for x in mask(out).splitlines())
    assert lines(outs[0]) == lines(outs[1])
    assert " added to cluster " in outs[1] and 'ETCD_INITIAL_CLUSTER_STATE="existing"' in outs[1]
    listed = etcdctl(py, "member", "list", "-w", "json").stdout
    assert sorted(m.get("name", "") for m in json.loads(listed)["members"]) == ["", "m-pyet"]
