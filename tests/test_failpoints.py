"""pyetcd.failpoints: the PYETCD_FAILPOINTS syntax, each action, and a real member crashing at one."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from pyetcd import failpoints
from support import CertPaths, Member, etcdctl, start_member


@pytest.fixture(autouse=True)
def _disarm() -> Iterator[None]:
    yield
    failpoints.configure("")


def test_terms_parse_with_skip_percent_count_and_argument() -> None:
    fp = failpoints.parse("a=3>50%2*sleep(20), b=on")
    assert (fp["a"].skip, fp["a"].percent, fp["a"].times, fp["a"].action, fp["a"].arg) == (3, 50.0, 2, "sleep", 20)
    assert fp["b"].action == "on" and fp["b"].times == -1


@pytest.mark.parametrize("bad", ["a", "a=explode", "=on", "a=on(x)"])
def test_a_bad_term_names_itself_and_the_syntax(bad: str) -> None:
    with pytest.raises(ValueError, match="name=\\[K>\\]"):
        failpoints.parse(bad)


def test_on_fires_after_the_skip_count_and_at_most_n_times() -> None:
    failpoints.configure("p=2>2*on")
    assert [failpoints.hit("p") for _ in range(6)] == [False, False, True, True, False, False]
    assert failpoints.hit("unarmed") is False


def test_sleep_sleeps_and_percent_fires_some_of_the_time() -> None:
    failpoints.configure("s=sleep(50),h=50%on")
    start = time.monotonic()
    assert failpoints.hit("s") is False
    assert time.monotonic() - start >= 0.05
    fired = sum(failpoints.hit("h") for _ in range(400))
    assert 120 < fired < 280


def test_panic_exits_at_once_with_its_status() -> None:
    code = "from pyetcd import failpoints; failpoints.hit('x'); print('not reached')"
    res = subprocess.run([sys.executable, "-c", code], env={"PYETCD_FAILPOINTS": "x=panic"},
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == failpoints.PANIC_STATUS
    assert "failpoint x: panic" in res.stderr and "not reached" not in res.stdout


def test_member_crashes_at_a_turn_failpoint_and_recovers_every_acknowledged_write(
        tmp_path: object, certs: CertPaths) -> None:
    m = start_member("pyetcd", tmp_path / "m", certs)  # type: ignore[operator]
    try:
        etcdctl(m, "put", "before", "1")
        m.env = {"PYETCD_FAILPOINTS": "turn.after_persist=3>1*panic"}
        m.restart()
        for i in range(20):  # some turn after the third crashes the member after its commit
            if etcdctl(m, "put", f"k{i}", "v", check=False, timeout=5).returncode != 0:
                break
        m.proc.wait(10)  # type: ignore[union-attr]
        assert m.proc.returncode == failpoints.PANIC_STATUS  # type: ignore[union-attr]
        assert "failpoint turn.after_persist: panic" in m.log_tail(20)
        m.env = {}
        m.restart()
        keys = etcdctl(m, "get", "--prefix", "", "--keys-only").stdout.split()
        assert "before" in keys and all(f"k{j}" in keys for j in range(i))  # every acknowledged put
    finally:
        m.stop()


def test_a_node_loop_that_dies_of_an_error_stops_the_member_and_says_why(tmp_path: object, certs: CertPaths) -> None:
    """An error inside the raft node loop must not leave the member up but deaf: it logs the
    error and exits with status 2, as etcd's panics do; its data restarts cleanly."""
    m = start_member("pyetcd", tmp_path / "m", certs)  # type: ignore[operator]
    try:
        etcdctl(m, "put", "before", "1")
        m.env = {"PYETCD_FAILPOINTS": "bug.node_loop_raises=200>1*on"}
        m.restart()
        assert m.proc is not None
        assert m.proc.wait(30) == 2
        assert "the raft node loop failed; stopping the member: RuntimeError('failpoint bug.node_loop_raises')" in m.log_tail(80)
        m.env = {}
        m.restart()
        assert etcdctl(m, "get", "before", "--print-value-only").stdout == "1\n"
    finally:
        m.stop()


def test_the_selftests_deliberate_ack_bug_leaves_a_cluster_serving(cluster_factory: object) -> None:
    """bug.ack_before_commit (robustness selftest) leaves a turn's transactions for the next turn
    to commit. A cluster's lone-client turns move between the event loop and the apply thread,
    and an LMDB write transaction belongs to the thread that began it: committed from the
    other, the member hung, and the selftest could no longer show that its checker catches the
    bug. The cluster must keep serving, bug and all."""
    members: list[Member] = cluster_factory(  # type: ignore[operator]
        "pyetcd", env={"PYETCD_FAILPOINTS": "bug.ack_before_commit=on"})
    for i in range(30):  # (what reads see is the bug's business: the selftest's checkers judge that)
        assert etcdctl(members[i % 3], "put", f"k{i}", "v", timeout=10).stdout.strip() == "OK"
