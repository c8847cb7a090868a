"""ReadIndex batching: one round in flight at a time, later reads join the next round, an
overdue round is asked again, and reads are released once their index is applied."""

from __future__ import annotations

import asyncio
import itertools

from pyetcd.raft import ReadState
from pyetcd.server.read_index import RETRY_AFTER, ReadIndex


def test_one_round_in_flight_then_the_next_takes_every_waiting_read() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ids = itertools.count(1)
        ri = ReadIndex(lambda: next(ids))
        first = [loop.create_future() for _ in range(3)]
        for f in first:
            ri.add(f)
        ctx1 = ri.next_round(0.0)
        assert ctx1 is not None and not ri.ready_for_round
        later = [loop.create_future() for _ in range(2)]
        for f in later:
            ri.add(f)
        assert ri.next_round(0.1) is None  # still in flight: the new reads wait for the next round
        ri.answered([ReadState(index=7, request_ctx=ctx1)], applied=5)
        assert not any(f.done() for f in first)  # index 7 not applied yet
        assert ri.ready_for_round
        ctx2 = ri.next_round(0.2)
        assert ctx2 is not None and ctx2 != ctx1
        ri.applied(7)
        assert all(f.done() for f in first) and not any(f.done() for f in later)
        ri.answered([ReadState(index=8, request_ctx=ctx2)], applied=8)
        assert all(f.done() for f in later)

    asyncio.run(scenario())


def test_an_overdue_round_is_asked_again_with_the_new_reads() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ids = itertools.count(1)
        ri = ReadIndex(lambda: next(ids))
        lost, late = loop.create_future(), loop.create_future()
        ri.add(lost)
        ctx1 = ri.next_round(0.0)
        ri.add(late)
        assert ri.next_round(RETRY_AFTER / 2) is None
        ctx2 = ri.next_round(RETRY_AFTER + 0.01)  # the first round was never answered
        assert ctx2 is not None and ctx2 != ctx1
        ri.answered([ReadState(index=3, request_ctx=ctx1)], applied=3)  # a late answer to the old round
        assert not lost.done()
        ri.answered([ReadState(index=3, request_ctx=ctx2)], applied=3)
        assert lost.done() and late.done()

    asyncio.run(scenario())
