"""A small fixed budget of the robustness suite in the default test run: one short run per server,
one short 3-member pyetcd run (about 10 s) whose leader is partitioned through the peer proxies, and
one pyetcd run (about 12 s) whose short leases expire while the member is paused.

Real etcd proves the harness and the checkers pass an etcd they did not write; pyetcd is the
thing under test. Each single-member run kills the member with SIGKILL mid-traffic and restarts it. The long
seeded runs are ``make robustness``; the checkers' ability to fail is ``make robustness-selftest``
(and tests/test_robustness_checker.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from robustness.run import RunConfig, run_once
from support import CertPaths, pyetcd_unavailable_reason


@pytest.mark.parametrize("kind", ["etcd", "pyetcd"])
def test_short_run_with_a_kill_passes_every_check(kind: str, tmp_path: Path, certs: CertPaths) -> None:
    if kind == "pyetcd" and (reason := pyetcd_unavailable_reason()):
        pytest.skip(reason)
    r = run_once(RunConfig(seed=7, base=tmp_path, certs=certs, kind=kind, fault="kill", duration=2.5,
                           clients=4, watchers=2))
    assert not r.failed, (r.line(), r.log, r.verdict.findings(), r.error, r.dir)
    assert r.fired and r.verdict.acked_writes > 100
    assert r.verdict.linearizable is True and not r.verdict.watch and not r.verdict.lost


def test_short_three_member_run_with_a_leader_partition_passes_every_check(tmp_path: Path, certs: CertPaths) -> None:
    """The cluster path end to end: members behind peer proxies, the leader partitioned both ways,
    then every member at the final revision with the same keys and HashKV."""
    if reason := pyetcd_unavailable_reason():
        pytest.skip(reason)
    r = run_once(RunConfig(seed=11, base=tmp_path, certs=certs, kind="pyetcd", fault="partition-leader",
                           duration=2.5, clients=4, watchers=2, members=3))
    assert not r.failed and not r.inconclusive, (r.line(), r.log, r.verdict.findings(), r.error, r.dir)
    assert r.fired and r.verdict.acked_writes > 100
    assert any("partition" in line for line in r.log), r.log


def test_short_leases_expire_during_a_pause_and_every_check_passes(tmp_path: Path, certs: CertPaths) -> None:
    """Keep-alives answered TTL 0 and puts refused after the resume, each expiry's deletes one revision."""
    if reason := pyetcd_unavailable_reason():
        pytest.skip(reason)
    r = run_once(RunConfig(seed=3, base=tmp_path, certs=certs, kind="pyetcd", fault="lease-pause", duration=2.5,
                           clients=4, watchers=2))
    assert not r.failed and not r.inconclusive, (r.line(), r.log, r.verdict.findings(), r.error, r.dir)
    assert r.fired and r.verdict.acked_writes > 100
    granted, expired = (int(r.leases.split()[i]) for i in (2, 4))  # "short leases: G granted, E expired ..."
    assert granted >= 4 and expired >= 2, r.leases  # both keepers' first leases expired under traffic
