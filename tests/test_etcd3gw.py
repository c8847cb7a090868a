"""etcd3gw's own integration tests (from its PyPI sdist) against pyetcd and against real etcd:
the same tests must pass on both. Not in the default run (it builds a virtualenv): `make etcd3gw`.

etcd3gw is the JSON-gateway client OpenStack uses; its tests expect plain HTTP on localhost.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import ETCD_BIN, free_port, pyetcd_command

pytestmark = pytest.mark.etcd3gw
SDIST = "etcd3gw==2.7.0"


@pytest.fixture(scope="module")
def etcd3gw_tests(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(python of a venv with etcd3gw and its test deps, the unpacked sdist's directory)."""
    root = tmp_path_factory.mktemp("etcd3gw")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", SDIST,
                    "-d", str(root)], check=True, capture_output=True, timeout=300)
    (tarball,) = root.glob("etcd3gw-*.tar.gz")
    subprocess.run(["tar", "xzf", str(tarball), "-C", str(root)], check=True)
    src = next(p for p in root.iterdir() if p.is_dir())
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    py = root / "venv" / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(src), "oslotest", "pytest", "futurist"], check=True,
                   capture_output=True, timeout=600)
    return py, src


def _serve(kind: str, base: Path) -> tuple[subprocess.Popen[bytes], int]:
    port, peer = free_port(), free_port()
    url, purl = f"http://localhost:{port}", f"http://127.0.0.1:{peer}"
    binary = [ETCD_BIN] if kind == "etcd" else pyetcd_command()
    proc = subprocess.Popen([*binary, "--name", kind, "--data-dir", str(base / kind), "--listen-client-urls", url,
                             "--advertise-client-urls", url, "--listen-peer-urls", purl,
                             "--initial-advertise-peer-urls", purl, "--initial-cluster", f"{kind}={purl}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while subprocess.run(["curl", "-sf", f"{url}/health"], capture_output=True, check=False).returncode:
        assert proc.poll() is None and time.monotonic() < deadline, f"{kind} did not start"
        time.sleep(0.2)
    return proc, port


def _run(kind: str, tmp_path: Path, py: Path, src: Path) -> tuple[int, int, str]:
    proc, port = _serve(kind, tmp_path)
    try:
        env = {**os.environ, "TOOZ_TEST_HTTP_URL": f"http://localhost:{port}", "TOOZ_TEST_ETCD_PORT": str(port)}
        res = subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "etcd3gw/tests"], cwd=src,
                             env=env, capture_output=True, text=True, timeout=900, check=False)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", res.stdout)) else 0
    failed = int(m.group(1)) if (m := re.search(r"(\d+) failed", res.stdout)) else 0
    return passed, failed, res.stdout[-3000:]


def test_etcd3gw_suite_passes_on_pyetcd_as_on_etcd(etcd3gw_tests: tuple[Path, Path], tmp_path: Path) -> None:
    py, src = etcd3gw_tests
    real = _run("etcd", tmp_path, py, src)
    ours = _run("pyetcd", tmp_path, py, src)
    print(f"etcd3gw tests: real etcd {real[0]} passed {real[1]} failed; pyetcd {ours[0]} passed {ours[1]} failed")
    assert real[0] > 0 and real[1] == 0, real[2]
    assert ours[:2] == real[:2], ours[2]
