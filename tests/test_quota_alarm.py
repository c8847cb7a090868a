"""--quota-backend-bytes, the NOSPACE alarm and defragmentation, through etcdctl, on real etcd
and on pyetcd: the operator's recovery procedure from etcd's maintenance guide must work."""

from __future__ import annotations

import json

import pytest

from support import Member, etcdctl

QUOTA = 300_000
NOSPACE = "etcdserver: mvcc: database space exceeded"


def _err(res: object) -> str:
    return next((line for line in res.stderr.splitlines() if line.startswith("Error:")), "")  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["etcd", "pyetcd"])
def test_quota_raises_nospace_and_the_guide_recovers(kind: str, member_factory: object) -> None:
    m: Member = member_factory(kind, extra_args=["--quota-backend-bytes", str(QUOTA)])  # type: ignore[operator]
    etcdctl(m, "put", "small", "1")
    value = "b" * 4096
    for i in range(QUOTA // 4096 + 50):
        res = etcdctl(m, "put", f"big{i}", value, check=False)
        if res.returncode != 0:
            assert _err(res) == f"Error: {NOSPACE}"
            break
    else:
        pytest.fail("the quota was never reached")
    member_id = json.loads(etcdctl(m, "endpoint", "status", "-w", "json").stdout)[0]["Status"]["header"]["member_id"]
    assert etcdctl(m, "alarm", "list").stdout == f"memberID:{member_id} alarm:NOSPACE \n"
    status = json.loads(etcdctl(m, "endpoint", "status", "-w", "json").stdout)[0]["Status"]
    assert status["errors"] == [f"memberID:{member_id} alarm:NOSPACE "]
    # while the alarm is raised: writes are refused, reads and deletes still work
    assert _err(etcdctl(m, "put", "small", "2", check=False)) == f"Error: {NOSPACE}"
    assert etcdctl(m, "get", "small", "--print-value-only").stdout == "1\n"
    assert int(etcdctl(m, "del", "--prefix", "big").stdout) > 0
    rev = json.loads(etcdctl(m, "get", "small", "-w", "json").stdout)["header"]["revision"]
    assert etcdctl(m, "compaction", "--physical", str(rev)).stdout == f"compacted revision {rev}\n"
    before = json.loads(etcdctl(m, "endpoint", "status", "-w", "json").stdout)[0]["Status"]["dbSize"]
    assert "Finished defragmenting etcd member" in etcdctl(m, "defrag").stdout
    after = json.loads(etcdctl(m, "endpoint", "status", "-w", "json").stdout)[0]["Status"]["dbSize"]
    assert after < before
    etcdctl(m, "alarm", "disarm")
    assert etcdctl(m, "alarm", "list").stdout == ""
    assert etcdctl(m, "put", "small", "3").stdout == "OK\n"
    assert etcdctl(m, "get", "small", "--print-value-only").stdout == "3\n"
