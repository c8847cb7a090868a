"""pyetcd.embed: a member on free ports in a temporary directory, with or without TLS, as sync and
async context managers; reset() between tests; nothing left behind after it stops.

Checked with the real etcdctl (a client that knows nothing of pyetcd).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyetcd.embed import Etcd
from support import ETCDCTL_BIN, etcdctl_env


def ctl(etcd: Etcd, *args: str, tls: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [ETCDCTL_BIN, f"--endpoints={etcd.endpoints[0]}", "--command-timeout=5s"]
    if tls and etcd.ca and etcd.cert and etcd.key:
        cmd += [f"--cacert={etcd.ca}", f"--cert={etcd.cert}", f"--key={etcd.key}"]
    res = subprocess.run([*cmd, *args], capture_output=True, text=True, env=etcdctl_env(), timeout=30)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_plain_member_serves_and_leaves_nothing_behind() -> None:
    with Etcd() as etcd:
        assert etcd.ca is None and etcd.cert is None and etcd.key is None
        assert len(etcd.endpoints) == 1 and etcd.endpoints[0].startswith("http://127.0.0.1:")
        ctl(etcd, "put", "greeting", "hello")
        assert ctl(etcd, "get", "greeting", "--print-value-only").stdout.strip() == "hello"
        status = ctl(etcd, "endpoint", "status", "-w", "json").stdout
        assert '"version":"3.5.13"' in status  # ETCD_API_VERSION: kube-apiserver's progress-request check
        pids, directory = etcd.pids, etcd.directory
        assert directory.is_dir() and pids
    assert all(_gone(p) for p in pids)
    assert not directory.exists()


def test_tls_member_in_async_code() -> None:
    async def scenario() -> tuple[list[int], Path]:
        ticks = 0

        async def ticker() -> None:  # the caller's loop keeps running while the member starts
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        async with Etcd(tls=True) as etcd:
            assert ticks > 5
            assert etcd.endpoints[0].startswith("https://")
            assert etcd.ca and etcd.cert and etcd.key and all(Path(p).is_file() for p in (etcd.ca, etcd.cert, etcd.key))
            ctl(etcd, "put", "k", "v")
            refused = ctl(etcd, "get", "k", tls=False, check=False)  # no CA, no client certificate
            assert refused.returncode != 0
            pids, directory = etcd.pids, etcd.directory
        t.cancel()
        return pids, directory

    pids, directory = asyncio.run(scenario())
    assert all(_gone(p) for p in pids) and not directory.exists()


def test_reset_empties_keys_leases_users_and_roles(tmp_path: Path) -> None:
    with Etcd(data_dir=tmp_path / "e") as etcd:
        ctl(etcd, "put", "a", "1")
        ctl(etcd, "put", "\x01low", "2")
        lease = ctl(etcd, "lease", "grant", "600").stdout.split()[1]
        ctl(etcd, "put", "leased", "3", f"--lease={lease}")
        ctl(etcd, "user", "add", "alice", "--new-user-password=pw")
        ctl(etcd, "role", "add", "reader")
        started = time.monotonic()
        etcd.reset()
        took = time.monotonic() - started
        assert ctl(etcd, "get", "", "--from-key", "--keys-only").stdout.strip() == ""
        assert ctl(etcd, "lease", "list").stdout.split("\n")[0].startswith("found 0 leases")
        assert ctl(etcd, "user", "list").stdout.strip() == ""
        assert ctl(etcd, "role", "list").stdout.strip() == ""
        assert took < 0.5, f"reset took {took:.3f}s"
        pid_before = etcd.pids

        # auth on cannot be undone without credentials: the member is replaced by a fresh one
        ctl(etcd, "user", "add", "root", "--new-user-password=pw")
        ctl(etcd, "auth", "enable")
        ctl(etcd, "--user=root:pw", "put", "secret", "x")
        etcd.reset()
        assert etcd.pids != pid_before
        assert ctl(etcd, "user", "list").stdout.strip() == ""  # no credentials needed: auth is off again
        assert ctl(etcd, "get", "", "--from-key", "--keys-only").stdout.strip() == ""
    assert (tmp_path / "e").is_dir()  # a directory the caller gave is the caller's to remove


def test_a_failed_start_says_why_and_stops() -> None:
    etcd = Etcd(extra_args=["--max-txn-ops=0"], timeout=20)
    with pytest.raises(RuntimeError, match="max-txn-ops"):
        etcd.start()
    assert etcd.pids == []


def test_embed_and_plugin_do_not_load_the_generated_stubs() -> None:
    """Client libraries register etcd's .proto files in protobuf's default pool too; our stubs would clash."""
    code = ("import sys, pyetcd.embed, pyetcd.embed.pytest_plugin\n"
            "loaded = [m for m in sys.modules if m.startswith('pyetcd.api') or m.endswith('_pb2')]\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cluster_members_name_every_member_in_initial_cluster(tmp_path: Path) -> None:
    etcd = Etcd(members=3, tls=True)
    etcd._dir = tmp_path  # the command lines only; nothing is started
    etcd._launch_plan()
    args = [etcd._args(m) for m in etcd._members]
    initial = {a[a.index("--initial-cluster") + 1] for a in args}
    assert len(initial) == 1
    (cluster,) = initial
    assert cluster == ",".join(f"m{i}=https://127.0.0.1:{m.peer_port}" for i, m in enumerate(etcd._members))
    assert len({a[a.index("--listen-client-urls") + 1] for a in args}) == 3
    assert all("--peer-client-cert-auth" in a and a[a.index("--initial-cluster-token") + 1] == etcd.token for a in args)


def test_three_member_cluster() -> None:
    etcd = Etcd(members=3).start()
    try:
        ctl(etcd, "put", "k", "v")
        for url in etcd.endpoints:
            res = subprocess.run([ETCDCTL_BIN, f"--endpoints={url}", "get", "k", "--print-value-only"],
                                 capture_output=True, text=True, env=etcdctl_env(), timeout=30)
            assert res.stdout.strip() == "v"
        etcd.reset()
        assert ctl(etcd, "get", "", "--from-key").stdout.strip() == ""
        pids = etcd.pids
    finally:
        etcd.stop()
    assert len(pids) == 3 and all(_gone(p) for p in pids)
