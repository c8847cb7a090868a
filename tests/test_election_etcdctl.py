"""``etcdctl elect`` (3.4, client-side Election recipe) against real etcd and pyetcd: a leader,
a waiting candidate and an observer (``elect -l``); failover when the leader's process dies."""

from __future__ import annotations

import re
import signal
import time

import pytest

from conftest import MemberFactory
from support import SERVER_KINDS, Background, etcdctl

KEY = re.compile(r"^E/[0-9a-f]+$")


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_candidate_observer_and_failover(member_factory: MemberFactory, kind: str) -> None:
    m = member_factory(kind)
    observer = Background(m, "elect", "-l", "E")
    a = b = None
    try:
        time.sleep(0.5)
        a = Background(m, "elect", "E", "p1")
        lines = a.wait_lines(2)
        assert KEY.match(lines[0]) and lines[1] == "p1"
        assert observer.wait_lines(2) == lines  # the observer sees the leader and its proposal
        b = Background(m, "elect", "E", "p2")
        time.sleep(1.0)
        assert b.lines == []  # b waits behind a
        a.stop(signal.SIGTERM)  # the leader's process is killed: it resigns, b takes over
        t0 = time.monotonic()
        new = b.wait_lines(2, timeout=10)
        assert KEY.match(new[0]) and new[0] != lines[0] and new[1] == "p2"
        assert time.monotonic() - t0 < 5
        assert observer.wait_lines(4)[2:] == new
        assert etcdctl(m, "get", "--prefix", "E/", "--keys-only").stdout.split() == [new[0]]
    finally:
        for p in (a, b, observer):
            if p is not None:
                p.stop()


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_sigkilled_leader_replaced_once_its_lease_is_gone(member_factory: MemberFactory, kind: str) -> None:
    """A SIGKILLed etcdctl cannot resign; its 60 s session lease keeps the key. Revoking that
    lease (what its expiry would do, sooner) must hand the leadership over."""
    m = member_factory(kind)
    a = Background(m, "elect", "E", "p1")
    b = None
    try:
        key = a.wait_lines(2)[0]
        b = Background(m, "elect", "E", "p2")
        time.sleep(0.5)
        a.stop(signal.SIGKILL)
        time.sleep(0.5)
        assert b.lines == []
        etcdctl(m, "lease", "revoke", key.split("/")[1])
        assert b.wait_lines(2, timeout=10)[1] == "p2"
    finally:
        for p in (a, b):
            if p is not None:
                p.stop()
