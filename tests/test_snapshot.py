"""Backups: ``etcdctl snapshot save`` against pyetcd, ``pyetcdutl snapshot status/restore``, and a
new member started from the restored data dir with the key space, leases and revision intact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import CertPaths, Member, etcdctl, free_port

PYETCDUTL = str(Path(sys.executable).parent / "pyetcdutl")


def _util(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYETCDUTL, *args], capture_output=True, text=True, timeout=60)


def test_snapshot_save_restore_and_serve(pyetcd_member: Member, certs: CertPaths, tmp_path: Path) -> None:
    for i in range(20):
        etcdctl(pyetcd_member, "put", f"k{i:02d}", f"v{i}")
    etcdctl(pyetcd_member, "del", "k00")
    lease = etcdctl(pyetcd_member, "lease", "grant", "600").stdout.split()[1]
    etcdctl(pyetcd_member, "put", "leased", "x", "--lease", lease)
    rev = json.loads(etcdctl(pyetcd_member, "get", "k01", "-w", "json").stdout)["header"]["revision"]
    snap = tmp_path / "backup.db"
    out = etcdctl(pyetcd_member, "snapshot", "save", str(snap))
    assert f"Snapshot saved at {snap}" in out.stdout + out.stderr

    st = _util("snapshot", "status", str(snap))
    assert st.returncode == 0, st.stderr
    assert f"revision: {rev}" in st.stdout and "totalKey: " in st.stdout  # etcdctl's fields (test_etcd_migration)

    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(snap.read_bytes()[:-40] + b"\0" * 40)
    bad = _util("snapshot", "restore", str(damaged), "--data-dir", str(tmp_path / "x"))
    assert bad.returncode == 1 and "integrity check failed" in bad.stderr

    restored = Member(kind="pyetcd", name="restored", base_dir=tmp_path / "r", client_port=free_port(),
                      peer_port=free_port(), certs=certs)
    res = _util("snapshot", "restore", str(snap), "--data-dir", str(restored.data_dir))
    assert res.returncode == 0, res.stderr
    again = _util("snapshot", "restore", str(snap), "--data-dir", str(restored.data_dir))
    assert again.returncode == 1 and "exists" in again.stderr
    try:
        restored.start()
        keys = etcdctl(restored, "get", "k", "--prefix", "--keys-only").stdout.split()
        assert keys == [f"k{i:02d}" for i in range(1, 20)]
        assert etcdctl(restored, "get", "leased", "--print-value-only").stdout == "x\n"
        assert lease in etcdctl(restored, "lease", "list").stdout
        after = etcdctl(restored, "put", "new", "1", "-w", "json").stdout
        assert json.loads(after)["header"]["revision"] == rev + 1
        members = json.loads(etcdctl(restored, "member", "list", "-w", "json").stdout)["members"]
        assert [m["name"] for m in members] == ["restored"]  # a new one-member cluster
    finally:
        restored.stop()


@pytest.mark.parametrize("kind", ["etcd", "pyetcd"])
def test_snapshot_save_streams_the_whole_backend(kind: str, member_factory: object, tmp_path: Path) -> None:
    m: Member = member_factory(kind)  # type: ignore[operator]
    etcdctl(m, "put", "a", "1")
    snap = tmp_path / "s.db"
    etcdctl(m, "snapshot", "save", str(snap))
    assert snap.stat().st_size > 4096
