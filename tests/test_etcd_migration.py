"""Backup and restore as etcd's ops guide does it, and data moving between real etcd and pyetcd
both ways through etcd's own files: snapshots (bbolt + SHA-256), `etcdctl snapshot restore`d
data dirs, and a stopped real etcd's own data dir. Every comparison is against the other server."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import ETCDCTL_BIN, CertPaths, Member, etcdctl, etcdctl_env, free_port
from support.bboltcheck import bbolt_check

PYETCDUTL = str(Path(sys.executable).parent / "pyetcdutl")
ROOT = ("--user", "root:rootpw")


def _member(kind: str, base: Path, certs: CertPaths) -> Member:
    return Member(kind=kind, name=f"{kind}-{base.name}", base_dir=base, client_port=free_port(),
                  peer_port=free_port(), certs=certs)


def _populate(m: Member, *, auth: bool) -> None:
    """History with overwrites, deletes, a compaction, large values, a lease, users and roles."""
    for i in range(30):
        etcdctl(m, "put", f"k{i:02d}", f"v{i}")
    etcdctl(m, "put", "k01", "again")
    etcdctl(m, "del", "k02")
    etcdctl(m, "compaction", "5")
    for i in range(3):
        etcdctl(m, "put", f"big{i}", chr(ord("a") + i) * 60_000)  # values larger than a page
    lease = etcdctl(m, "lease", "grant", "600").stdout.split()[1]
    etcdctl(m, "put", "leased", "x", "--lease", lease)
    etcdctl(m, "user", "add", "root:rootpw")
    etcdctl(m, "user", "add", "alice:alicepw")
    etcdctl(m, "role", "add", "reader")
    etcdctl(m, "role", "grant-permission", "reader", "read", "k", "--prefix")
    etcdctl(m, "user", "grant-role", "alice", "reader")
    if auth:
        etcdctl(m, "auth", "enable")


def _view(m: Member, user: tuple[str, ...] = ()) -> dict[str, object]:
    """What a client can see: every key at every revision since the compaction, leases, users,
    roles, the revision and HashKV."""
    def js(*args: str) -> dict:  # type: ignore[type-arg]
        return json.loads(etcdctl(m, *user, *args, "-w", "json").stdout)

    rev = js("get", "k00")["header"]["revision"]
    kvs = {r: js("get", "", "--prefix", f"--rev={r}").get("kvs", []) for r in range(5, rev + 1)}
    hashkv = js("endpoint", "hashkv", f"--rev={rev}")[0]["HashKV"]
    return {"revision": rev, "kvs": kvs, "hash": hashkv["hash"], "compact": hashkv.get("compact_revision"),
            "leases": sorted(lease["id"] for lease in js("lease", "list").get("leases", [])),
            "users": js("user", "list").get("users"), "roles": js("role", "list").get("roles"),
            "alice": js("user", "get", "alice").get("roles"), "reader": js("role", "get", "reader").get("perm")}


def _restore(snap: Path, m: Member) -> None:
    """`etcdctl snapshot restore` into the member's data dir, with its name and peer URL (and the
    whole cluster's, for a member of several)."""
    subprocess.run([ETCDCTL_BIN, "snapshot", "restore", str(snap), "--data-dir", str(m.data_dir),
                    "--name", m.name, "--initial-cluster", m.initial_cluster or f"{m.name}={m.peer_url}",
                    "--initial-advertise-peer-urls", m.peer_url, "--initial-cluster-token", m.cluster_token],
                   env=etcdctl_env(), check=True, capture_output=True, timeout=60)


def _files(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file()}


@pytest.fixture
def members(tmp_path: Path, certs: CertPaths) -> Iterator[dict[str, Member]]:
    made: dict[str, Member] = {}
    yield made
    for m in made.values():
        m.stop()


def _status_json(snap: Path) -> dict:  # type: ignore[type-arg]
    out = subprocess.run([ETCDCTL_BIN, "snapshot", "status", str(snap), "-w", "json"], env=etcdctl_env(),
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def _save(m: Member, snap: Path, user: tuple[str, ...] = ()) -> None:
    """`etcdctl snapshot save`; bbolt's own check passes on the file, and pyetcdutl describes it
    exactly as `etcdctl snapshot status` does."""
    etcdctl(m, *user, "snapshot", "save", str(snap))
    bbolt_check(snap)
    ours = subprocess.run([PYETCDUTL, "snapshot", "status", str(snap), "-w", "json"], capture_output=True,
                          text=True, check=True).stdout
    assert json.loads(ours) == _status_json(snap)


def _move(src: Member, kind: str, tmp_path: Path, certs: CertPaths, members: dict[str, Member],
          user: tuple[str, ...] = ()) -> tuple[Member, Path, dict[str, str]]:
    """src's snapshot, `etcdctl snapshot restore`d for a new member of ``kind``, which must then
    show every key at every revision, leases, users, roles and HashKV as src did. Returns the
    member, the snapshot and the restored files' hashes."""
    before = _view(src, user)
    snap = tmp_path / f"{src.kind}.db"
    _save(src, snap, user)
    src.stop()
    target = members[kind] = _member(kind, tmp_path / f"to-{kind}", certs)
    _restore(snap, target)
    restored = _files(target.data_dir)
    target.start()
    assert _view(target, user) == before
    return target, snap, restored


def test_ops_guide_backup_and_restore(pyetcd_member: Member, certs: CertPaths, tmp_path: Path,
                                      members: dict[str, Member]) -> None:
    """save -> status -w table -> restore --data-dir D -> pyetcd --data-dir D: same keys, same revisions."""
    _populate(pyetcd_member, auth=False)
    revision = _view(pyetcd_member)["revision"]
    restored, snap, files = _move(pyetcd_member, "pyetcd", tmp_path, certs, members)
    table = subprocess.run([ETCDCTL_BIN, "snapshot", "status", str(snap), "-w", "table"], env=etcdctl_env(),
                           capture_output=True, text=True, check=True).stdout
    assert re.search(r"\|\s+HASH\s+\|\s+REVISION\s+\|", table) and f"| {revision:>8} |" in table, table
    assert {k: v for k, v in _files(restored.data_dir).items() if k in files} == files  # etcd's files untouched
    bbolt_check(restored.data_dir / "member" / "snap" / "db")


def test_real_etcd_snapshot_restored_for_pyetcd(real_etcd: Member, certs: CertPaths, tmp_path: Path,
                                                members: dict[str, Member]) -> None:
    _populate(real_etcd, auth=True)
    py, _, _ = _move(real_etcd, "pyetcd", tmp_path, certs, members, ROOT)
    alice = ("--user", "alice:alicepw")
    assert etcdctl(py, *alice, "get", "k03", "--print-value-only").stdout == "v3\n"
    assert etcdctl(py, *alice, "put", "k03", "no", check=False).returncode != 0  # her role only reads


def test_pyetcd_snapshot_restored_for_real_etcd(pyetcd_member: Member, certs: CertPaths, tmp_path: Path,
                                                members: dict[str, Member]) -> None:
    _populate(pyetcd_member, auth=False)
    _move(pyetcd_member, "etcd", tmp_path, certs, members)


def test_pyetcd_starts_on_a_stopped_real_etcds_data_dir(real_etcd: Member, certs: CertPaths, tmp_path: Path,
                                                        members: dict[str, Member]) -> None:
    _populate(real_etcd, auth=False)
    before = _view(real_etcd)
    member_id = json.loads(etcdctl(real_etcd, "endpoint", "status", "-w", "json").stdout)[0]["Status"]["header"]
    real_etcd.stop()
    original = _files(real_etcd.data_dir)
    py = members["py"] = Member(kind="pyetcd", name=real_etcd.name, base_dir=real_etcd.base_dir,
                                client_port=free_port(), peer_port=free_port(), certs=certs)
    py.start()
    assert _view(py) == before
    header = json.loads(etcdctl(py, "endpoint", "status", "-w", "json").stdout)[0]["Status"]["header"]
    assert (header["cluster_id"], header["member_id"]) == (member_id["cluster_id"], member_id["member_id"])
    py.stop()
    assert {k: v for k, v in _files(real_etcd.data_dir).items() if k in original} == original
    py.start()  # a second start uses the converted store, no second import
    assert _view(py) == before
    assert "converting etcd data dir" not in py.log_tail(200).split("received signal")[-1]


def test_damaged_snapshots_are_refused(pyetcd_member: Member, tmp_path: Path) -> None:
    etcdctl(pyetcd_member, "put", "a", "1")
    snap = tmp_path / "s.db"
    etcdctl(pyetcd_member, "snapshot", "save", str(snap))
    data = snap.read_bytes()
    flipped = bytearray(data)
    flipped[3 * 4096 + 100] ^= 0x01
    cases = {"flipped.db": (bytes(flipped), "integrity check failed"),
             "short-page.db": (data[:-4096], "integrity check failed"),
             "short.db": (data[:-100], "no integrity hash found")}
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        for cmd in (["restore", str(tmp_path / name), "--data-dir", str(tmp_path / f"d-{name}")],
                    ["status", str(tmp_path / name)]):
            res = subprocess.run([PYETCDUTL, "snapshot", *cmd], capture_output=True, text=True)
            assert res.returncode == 1 and message in res.stderr, (name, cmd, res.stderr)
        assert not (tmp_path / f"d-{name}").exists()


def test_a_damaged_etcd_wal_stops_the_start_with_a_message(real_etcd: Member, certs: CertPaths) -> None:
    etcdctl(real_etcd, "put", "a", "1")
    real_etcd.stop()
    wal = next((real_etcd.data_dir / "member" / "wal").glob("*.wal"))
    raw = bytearray(wal.read_bytes())
    raw[200] ^= 0xFF  # inside the first records
    wal.write_bytes(bytes(raw))
    before = _files(real_etcd.data_dir)
    py = Member(kind="pyetcd", name=real_etcd.name, base_dir=real_etcd.base_dir, client_port=free_port(),
                peer_port=free_port(), certs=certs)
    res = subprocess.run(py.command(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr
    assert "cannot convert etcd's data dir" in res.stderr and ".wal" in res.stderr, res.stderr
    assert _files(real_etcd.data_dir) == before  # nothing added, nothing changed


def test_three_member_restore_starts_a_three_member_cluster(pyetcd_member: Member, certs: CertPaths,
                                                             tmp_path: Path, members: dict[str, Member]) -> None:
    """The ops guide's multi-member restore: one snapshot, `etcdctl snapshot restore` once per
    member with --name/--initial-cluster/--initial-cluster-token/--initial-advertise-peer-urls,
    then three pyetcd members start on the three dirs: one cluster, every key on every member."""
    _populate(pyetcd_member, auth=False)
    before = _view(pyetcd_member)
    snap = tmp_path / "cluster.db"
    _save(pyetcd_member, snap)
    pyetcd_member.stop()
    trio = [_member("pyetcd", tmp_path / f"r{i}", certs) for i in range(3)]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in trio)
    for m in trio:
        m.initial_cluster, m.cluster_token = initial, "restored"
        members[m.name] = m
        _restore(snap, m)
    for m in trio:
        m.spawn()
    for m in trio:
        m.wait_healthy(60)
    statuses = [json.loads(etcdctl(m, "endpoint", "status", "-w", "json").stdout)[0]["Status"] for m in trio]
    assert len({s["header"]["cluster_id"] for s in statuses}) == 1
    assert len({s["leader"] for s in statuses}) == 1 and statuses[0]["leader"]
    assert len(etcdctl(trio[0], "member", "list").stdout.splitlines()) == 3
    for m in trio:
        assert _view(m) == before
    etcdctl(trio[0], "put", "after", "restore")
    assert etcdctl(trio[2], "get", "after", "--print-value-only").stdout == "restore\n"
