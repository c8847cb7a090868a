"""``pip install .`` of the checkout into a fresh virtualenv, as a Python team would install pyetcd.

Slow for the default run (pip resolves and installs grpcio, protobuf, lmdb, cryptography...
from the package index: 12 s with pip's cache warm on these 2 cores), so it runs only with ``make packaging`` (marker ``packaging``). A faster
``--no-deps`` install into a venv that borrows this venv's packages was the alternative; it was
not taken because it cannot catch the mistake this test exists for: a dependency missing from
pyproject.toml.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

from support.plugin_sample import run_sample

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[1]
_SKIP = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", ".*_cache", "*.etcd", "certs")


def _run(*cmd: str | Path, cwd: Path | None = None, timeout: float = 600) -> str:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, timeout=timeout)
    assert res.returncode == 0, f"{cmd}: {res.stdout}\n{res.stderr}"
    return res.stdout


def test_pip_install_of_the_checkout_into_a_fresh_venv(tmp_path: Path) -> None:
    source = tmp_path / "checkout"  # a copy: building in place would leave build/ in the work tree
    shutil.copytree(REPO, source, ignore=_SKIP)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py, bin_dir = env_dir / "bin" / "python", env_dir / "bin"

    wheels = tmp_path / "wheels"
    _run(py, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, source)
    (wheel,) = wheels.glob("pyetcd_server-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for stub in ("rpc_pb2.py", "rpc_pb2.pyi", "rpc_pb2_grpc.py", "kv_pb2.py", "internal_pb2.py", "v3lock_pb2_grpc.py"):
        assert f"pyetcd/api/{stub}" in names, f"{stub} missing from {wheel.name}"
    # the client-port front's native relay, compiled (optional in setup.py, but a compiler is here)
    assert any(re.fullmatch(r"pyetcd/gateway/_pump\.cpython-.*\.so", n) for n in names), names
    assert "pyetcd/gateway/_pump.pyi" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert re.search(r"\[console_scripts\][^\[]*pyetcd = pyetcd\.cli\.launch:main", entry_points), entry_points
    assert "pyetcdutl = pyetcd.cli.util:main" in entry_points
    assert re.search(r"\[pytest11\]\s*pyetcd = pyetcd\.embed\.pytest_plugin", entry_points), entry_points

    _run(py, "-m", "pip", "install", "-q", source, "pytest")  # `pip install .`, not -e
    version = _run(bin_dir / "pyetcd", "--version")
    assert re.search(r"etcd API Version: 3\.5\.(1[3-9]|[2-9]\d)", version), version
    assert _run(py, "-m", "pyetcd", "--version") == version
    assert "snapshot" in _run(bin_dir / "pyetcdutl", "--help")

    res = run_sample(str(py), tmp_path / "userproject")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "test_put_with_etcdctl PASSED" in out and "test_second_test_sees_an_empty_keyspace PASSED" in out, out

