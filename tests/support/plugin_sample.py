"""A user's test file for the pytest plugin, and how to run it in a directory of its own.

The sample knows nothing of this repository: it asks for the ``etcd`` fixture (found through the
``pytest11`` entry point, no conftest), talks to it with the real etcdctl and with aetcd, and its
second test checks that the first test's key is gone.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SAMPLE_TEST = '''
import asyncio
import os
import subprocess
from urllib.parse import urlsplit


def ctl(etcd, *args):
    env = {**os.environ, "ETCDCTL_API": "3"}
    res = subprocess.run(["etcdctl", f"--endpoints={etcd.endpoints[0]}", *args], env=env,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout


def note_pids(etcd):
    with open("member-pids.txt", "a") as f:
        f.write(repr(sorted(etcd.pids)) + "\\n")


def test_put_with_etcdctl(etcd):
    note_pids(etcd)
    ctl(etcd, "put", "shared", "from-the-first-test")
    assert ctl(etcd, "get", "shared", "--print-value-only").strip() == "from-the-first-test"


def test_second_test_sees_an_empty_keyspace(etcd):
    note_pids(etcd)
    assert ctl(etcd, "get", "", "--from-key").strip() == ""


def test_aetcd_client(etcd):
    note_pids(etcd)
    aetcd = __import__("pytest").importorskip("aetcd")
    url = urlsplit(etcd.endpoints[0])

    async def roundtrip():
        async with aetcd.Client(host=url.hostname, port=url.port) as client:
            await client.put(b"greeting", b"hello")
            return (await client.get(b"greeting")).value

    assert asyncio.run(roundtrip()) == b"hello"
    assert ctl(etcd, "get", "greeting", "--print-value-only").strip() == "hello"


def test_three_member_cluster(etcd_cluster):
    assert len(etcd_cluster.endpoints) == 3
    env = {**os.environ, "ETCDCTL_API": "3"}
    first, last = etcd_cluster.endpoints[0], etcd_cluster.endpoints[-1]
    put = subprocess.run(["etcdctl", f"--endpoints={first}", "put", "k", "v"], env=env, capture_output=True, text=True)
    assert put.returncode == 0, put.stderr
    get = subprocess.run(["etcdctl", f"--endpoints={last}", "get", "k", "--print-value-only"], env=env,
                         capture_output=True, text=True)
    assert get.stdout.strip() == "v"
'''


TLS_SAMPLE_TEST = '''
import os
import subprocess
from pathlib import Path


def test_mutual_tls(etcd):
    assert etcd.endpoints[0].startswith("https://") and all(Path(p).is_file() for p in (etcd.ca, etcd.cert, etcd.key))
    env = {**os.environ, "ETCDCTL_API": "3"}
    base = ["etcdctl", f"--endpoints={etcd.endpoints[0]}", "--dial-timeout=2s", "--command-timeout=2s"]
    tls = [f"--cacert={etcd.ca}", f"--cert={etcd.cert}", f"--key={etcd.key}"]
    assert subprocess.run([*base, *tls, "put", "k", "v"], env=env, capture_output=True).returncode == 0
    assert subprocess.run([*base, f"--cacert={etcd.ca}", "get", "k"], env=env, capture_output=True).returncode != 0
'''


def run_sample(python: str, directory: Path, timeout: float = 300, *, ini: str = "",
               test: str = SAMPLE_TEST) -> subprocess.CompletedProcess[str]:
    """Write ``test`` into ``directory`` (with a pytest.ini holding ``ini``) and run it with ``python -m pytest``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    (directory / "test_sample.py").write_text(test)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ETCDCTL_"))}
    return subprocess.run([python, "-m", "pytest", "-vv", "-p", "no:cacheprovider", "--durations=0", "-rs"],
                          cwd=directory, env=env, capture_output=True, text=True, timeout=timeout)
