"""docker-compose.yml and `make cluster` run the same three members: the compose file's command
lines are ``localcluster.member_args`` with the containers' host names, and `make cluster`
really starts a three-member cluster that the real etcdctl reaches on all three endpoints."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pyetcd.cli.localcluster import MEMBERS, member_args

ROOT = Path(__file__).resolve().parents[1]


def test_compose_commands_are_make_clusters() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert sorted(services) == sorted(n for n, _, _ in MEMBERS)
    for name, cport, pport in MEMBERS:
        svc = services[name]
        assert svc["hostname"] == name
        assert svc["command"] == member_args(name, "{name}", "/certs", "/var/lib/etcd", listen_host="0.0.0.0")
        assert f"{cport}:{cport}" in svc["ports"] and f"{pport}:{pport}" in svc["ports"]
        assert "./certs:/certs:ro" in svc["volumes"]
        assert "pyetcd.tools.health" in svc["healthcheck"]["test"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["pyetcd"]' in dockerfile


def test_local_and_compose_differ_only_in_host_names() -> None:
    for name, _, _ in MEMBERS:
        local = member_args(name, "127.0.0.1", "/certs", "/var/lib/etcd")
        compose = member_args(name, "{name}", "/certs", "/var/lib/etcd", listen_host="0.0.0.0")
        assert len(local) == len(compose)
        differ = [(a, b) for a, b in zip(local, compose, strict=True) if a != b]
        assert differ and all("127.0.0.1" in a for a, _ in differ)


@pytest.mark.skipif(shutil.which("etcdctl") is None, reason="needs etcdctl (make deps)")
def test_make_cluster_member_args_start_a_cluster(tmp_path: Path) -> None:
    """The local command lines work: three processes, one leader, a put seen on every member.
    (Run on free ports: 2379 and friends may be taken on a shared machine.)"""
    from support import CertPaths, free_port

    certs = CertPaths.create(tmp_path / "certs")
    ports = {name: (free_port(), free_port()) for name, _, _ in MEMBERS}
    procs = []
    try:
        for name, _, _ in MEMBERS:
            args = member_args(name, "127.0.0.1", str(certs.dir), str(tmp_path / name))
            text = " ".join(args)
            for n, (c, p) in ports.items():  # the same flags, on ports free here
                orig = next(m for m in MEMBERS if m[0] == n)
                text = text.replace(f":{orig[1]}", f":{c}").replace(f":{orig[2]}", f":{p}")
            procs.append(subprocess.Popen([sys.executable, "-m", "pyetcd", *text.split()],
                                          stdout=(tmp_path / f"{name}.log").open("wb"), stderr=subprocess.STDOUT))
        endpoints = ",".join(f"https://127.0.0.1:{c}" for c, _ in ports.values())
        base = ["etcdctl", f"--endpoints={endpoints}", f"--cacert={certs.ca}", f"--cert={certs.client}",
                f"--key={certs.client_key}", "--command-timeout=20s"]
        env = {"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}
        out = subprocess.run([*base, "put", "compose", "ok"], capture_output=True, text=True, env=env, timeout=60)
        assert out.stdout == "OK\n", out.stderr
        status = subprocess.run([*base, "endpoint", "status"], capture_output=True, text=True, env=env, timeout=60)
        assert status.stdout.count(", true, false,") == 1, status.stdout
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(15)
