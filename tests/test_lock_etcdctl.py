"""``etcdctl lock`` (3.4, client-side Mutex recipe over Txn and Watch) against real etcd and
pyetcd: mutual exclusion, FIFO order among waiters, release on exit and on lease expiry."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from conftest import MemberFactory
from support import SERVER_KINDS, Background, etcdctl

KEY = re.compile(r"^L/[0-9a-f]+$")


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_two_contenders_fifo_and_release_on_exit(member_factory: MemberFactory, kind: str) -> None:
    m = member_factory(kind)
    a = Background(m, "lock", "L")
    b = c = None
    try:
        assert KEY.match(a.wait_lines(1)[0])
        b = Background(m, "lock", "L")
        time.sleep(0.5)
        c = Background(m, "lock", "L")
        time.sleep(1.0)
        assert b.lines == [] and c.lines == []  # both wait while a holds the lock
        assert a.stop(signal.SIGTERM) == 0  # exit releases the lock (etcdctl unlocks)
        assert KEY.match(b.wait_lines(1, timeout=10)[0])
        time.sleep(0.5)
        assert c.lines == []  # FIFO: b (queued first) got it, c still waits
        b.stop(signal.SIGTERM)
        assert KEY.match(c.wait_lines(1, timeout=10)[0])
    finally:
        for p in (a, b, c):
            if p is not None:
                p.stop()
    assert etcdctl(m, "get", "--prefix", "L/").stdout == ""


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_mutual_exclusion_of_commands(member_factory: MemberFactory, kind: str, tmp_path: Path) -> None:
    m = member_factory(kind)
    log = tmp_path / "log"
    script = f"echo start $$ >> {log}; sleep 1; echo end $$ >> {log}"
    procs = [Background(m, "lock", "M", "--", "sh", "-c", script) for _ in range(3)]
    for p in procs:
        assert p.proc.wait(30) == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 6
    for i in range(0, 6, 2):  # start/end pairs never interleave
        assert lines[i].split()[0] == "start" and lines[i + 1] == "end " + lines[i].split()[1]


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_killed_holder_released_by_lease_expiry(member_factory: MemberFactory, kind: str) -> None:
    m = member_factory(kind)
    a = Background(m, "lock", "--ttl=2", "K")
    b = None
    try:
        assert a.wait_lines(1)[0].startswith("K/")
        b = Background(m, "lock", "K")
        time.sleep(0.5)
        a.stop(signal.SIGKILL)  # no unlock: the 2 s session lease must expire
        t0 = time.monotonic()
        assert b.wait_lines(1, timeout=10)[0].startswith("K/")
        assert time.monotonic() - t0 < 6
    finally:
        for p in (a, b):
            if p is not None:
                p.stop()
