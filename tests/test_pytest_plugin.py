"""The pytest plugin as a user meets it: a test file in a directory of its own, no conftest, the
``etcd`` fixture found through the ``pytest11`` entry point; the real etcdctl and aetcd as clients."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from support.plugin_sample import TLS_SAMPLE_TEST, run_sample


def test_sample_tests_pass_and_each_test_starts_empty(tmp_path: Path) -> None:
    res = run_sample(sys.executable, tmp_path / "userproject", timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert re.search(r"\b4 passed\b", out), out
    assert "test_aetcd_client PASSED" in out, out  # aetcd installed: the client example really ran
    assert "test_three_member_cluster PASSED" in out, out  # etcd_cluster: three members
    # one member for the session: every test of the `etcd` fixture saw the same process, wiped
    pids = (tmp_path / "userproject" / "member-pids.txt").read_text().splitlines()
    assert len(pids) == 3 and len(set(pids)) == 1, pids


def test_tls_from_the_ini_file(tmp_path: Path) -> None:
    res = run_sample(sys.executable, tmp_path / "tlsproject", timeout=120, ini="pyetcd_tls = true", test=TLS_SAMPLE_TEST)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "test_mutual_tls PASSED" in out, out
