"""Auto-compaction with etcd's semantics: the retention's parsing, both schedules (in-process, with
short intervals), only the leader compacting, and a real member compacting on its own (real etcd
and pyetcd side by side)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from pyetcd import errors
from pyetcd.server.autocompact import AutoCompactor, parse_retention
from support import Member, etcdctl


def test_retention_parsing_follows_etcd() -> None:
    assert parse_retention("periodic", "1") == 3600.0  # a bare number is hours in periodic mode
    assert parse_retention("periodic", "30m") == 1800.0
    assert parse_retention("periodic", "1h30m") == 5400.0
    assert parse_retention("periodic", "0") == 0.0
    assert parse_retention("revision", "1000") == 1000.0
    for mode, text in (("periodic", "soon"), ("sideways", "1")):
        with pytest.raises(ValueError):
            parse_retention(mode, text)
    assert AutoCompactor.from_config("periodic", "0", None, None, None) is None  # type: ignore[arg-type]


class Fake:
    """The member side of a compactor: a revision that grows, leadership, and the compactions asked for."""

    def __init__(self) -> None:
        self.rev = 1
        self.leader = True
        self.asked: list[int] = []
        self.fail_with: Exception | None = None

    async def compact(self, rev: int) -> None:
        self.asked.append(rev)
        if self.fail_with is not None:
            raise self.fail_with

    def compactor(self, mode: str, retention: float, **kw: float) -> AutoCompactor:
        return AutoCompactor(mode, retention, self.compact, lambda: self.rev, lambda: self.leader, **kw)


async def until(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def test_revision_mode_keeps_the_last_n_revisions_and_skips_repeats() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        f = Fake()
        c = f.compactor("revision", 10, revision_interval=0.02)
        c.start()
        f.rev = 5  # current - retention <= 0: nothing to do
        await asyncio.sleep(0.1)
        assert f.asked == []
        f.rev = 25
        await until(lambda: f.asked == [15])
        await asyncio.sleep(0.1)  # several more checks: rev 15 is not asked twice
        f.leader = False
        f.rev = 40
        await asyncio.sleep(0.1)  # a follower never compacts
        asked_as_follower = list(f.asked)
        f.leader = True
        f.fail_with = errors.ErrCompacted()  # someone compacted further: counts as done
        await until(lambda: c.compacted == [15, 30])
        await c.stop()
        return asked_as_follower, c.compacted

    asked_as_follower, compacted = asyncio.run(scenario())
    assert asked_as_follower == [15]
    assert compacted == [15, 30]


def test_periodic_mode_compacts_at_the_revision_one_period_ago() -> None:
    async def scenario() -> tuple[Fake, AutoCompactor, list[tuple[float, int]]]:
        f = Fake()
        c = f.compactor("periodic", 0.5)  # notes every 0.05 s, first compaction after 0.5 s
        seen: list[tuple[float, int]] = []
        began = time.monotonic()
        c.start()
        while time.monotonic() - began < 1.3:
            f.rev += 1
            seen.append((time.monotonic() - began, f.rev))
            await asyncio.sleep(0.01)
        await c.stop()
        return f, c, seen

    f, c, seen = asyncio.run(scenario())
    assert len(c.compacted) >= 2, c.compacted
    first = c.compacted[0]
    # the first compaction keeps about one period of history: its revision was current ~0.5 s before
    noted_at = next(t for t, rev in seen if rev >= first)
    assert noted_at < 0.25, (first, seen[:5])
    assert c.compacted == sorted(c.compacted) and len(set(c.compacted)) == len(c.compacted)


def test_failures_are_retried() -> None:
    async def scenario() -> AutoCompactor:
        f = Fake()
        f.rev = 100
        f.fail_with = errors.ErrTimeout()
        c = f.compactor("revision", 10, revision_interval=0.02)
        c.start()
        await until(lambda: len(f.asked) >= 2)
        assert c.compacted == []
        f.fail_with = None
        await until(lambda: c.compacted == [90])
        await c.stop()
        return c

    assert asyncio.run(scenario()).compacted == [90]


def _compacted(m: Member, rev: int) -> bool:
    res = etcdctl(m, "get", "k", f"--rev={rev}", check=False)
    return res.returncode != 0 and "compacted" in res.stderr


def test_a_member_compacts_on_its_own(any_member_autocompact: Member) -> None:
    m = any_member_autocompact
    for i in range(5):
        etcdctl(m, "put", "k", f"v{i}")  # revisions 2..6
    deadline = time.monotonic() + 15
    while not _compacted(m, 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _compacted(m, 2), m.log_tail()
    lines = [json.loads(ln) for ln in m.log_path.read_text().splitlines() if ln.startswith("{")]
    done = [ln for ln in lines if ln["msg"] == "completed auto periodic compaction" and ln["revision"] >= 2]
    assert done and done[0]["compact-period"] == "1s", m.log_tail()


@pytest.fixture(params=["etcd", "pyetcd"])
def any_member_autocompact(request: pytest.FixtureRequest, member_factory) -> Member:  # type: ignore[no-untyped-def]
    return member_factory(request.param, extra_args=["--logger", "zap", "--auto-compaction-mode", "periodic",
                                                     "--auto-compaction-retention", "1s"])
