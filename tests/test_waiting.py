"""The node loop's waiting primitives: request deadlines and the loop's wake-up."""

from __future__ import annotations

import asyncio

import pytest

from pyetcd import errors
from pyetcd.server.waiting import Deadlines, Wakeup


def test_deadlines_fail_only_what_is_late_and_unresolved() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        d = Deadlines(0.05, errors.ErrTimeout)
        late, answered = loop.create_future(), loop.create_future()
        d.track(late)
        d.track(answered)
        answered.set_result("ok")
        d.expire(loop.time())  # not yet
        assert not late.done()
        await asyncio.sleep(0.06)
        d.expire(loop.time())
        with pytest.raises(errors.ErrTimeout):
            late.result()
        assert answered.result() == "ok"
        stopped = d.track(loop.create_future())
        d.fail_all(errors.ErrStopped())
        with pytest.raises(errors.ErrStopped):
            stopped.result()

    asyncio.run(run())


def test_wakeup_returns_at_once_when_set_and_sleeps_otherwise() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        w = Wakeup()
        w.set()
        t0 = loop.time()
        await w.wait(5)
        assert loop.time() - t0 < 0.5  # already set: no sleep, and the flag is cleared
        t0 = loop.time()
        await w.wait(0.05)
        assert 0.04 <= loop.time() - t0 < 0.5  # nothing set: the timeout
        loop.call_later(0.02, w.set)
        t0 = loop.time()
        await w.wait(5)
        assert loop.time() - t0 < 0.5  # woken by a producer

    asyncio.run(run())
