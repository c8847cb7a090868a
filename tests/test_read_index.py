"""ReadIndex batching: one round in flight at a time, later reads join the next round, an
overdue round is asked again, reads are released once their index is applied, and while reads
overlap a round waits a little for company."""

from __future__ import annotations

import asyncio
import itertools

from pyetcd.raft import ReadState
from pyetcd.server.read_index import (
    HOLD_MAX,
    MIN_COMPANY,
    OVERLAP_WINDOW,
    RETRY_AFTER,
    ReadIndex,
)


def test_one_round_in_flight_then_the_next_takes_every_waiting_read() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ids = itertools.count(1)
        ri = ReadIndex(lambda: next(ids))
        first = [loop.create_future() for _ in range(3)]
        for f in first:
            ri.add(f)
        ctx1 = ri.next_round(0.0)
        assert ctx1 is not None and not ri.ready_for_round(0.0)
        later = [loop.create_future() for _ in range(2)]
        for f in later:
            ri.add(f)
        assert ri.next_round(0.1) is None  # still in flight: the new reads wait for the next round
        ri.answered([ReadState(index=7, request_ctx=ctx1)], applied=5)
        assert not any(f.done() for f in first)  # index 7 not applied yet
        assert ri.ready_for_round(0.2)
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


def _reads(ri: ReadIndex, count: int) -> list[asyncio.Future[None]]:
    """count reads added to ri, as count clients would."""
    loop = asyncio.get_running_loop()
    futs: list[asyncio.Future[None]] = [loop.create_future() for _ in range(count)]
    for f in futs:
        ri.add(f)
    return futs


def _answer(ri: ReadIndex, ctx: bytes | None, index: int) -> None:
    assert ctx is not None
    ri.answered([ReadState(index=index, request_ctx=ctx)], applied=index)


def test_a_lone_client_s_reads_never_wait_for_company() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ri = ReadIndex(itertools.count(1).__next__)
        now = 10.0
        for i in range(20):  # one read at a time, each right after the previous round
            fut = loop.create_future()
            ri.add(fut)
            assert ri.held_until(now) == 0.0 and ri.ready_for_round(now)
            ctx = ri.next_round(now)
            _answer(ri, ctx, i + 1)
            await asyncio.sleep(0)  # the reader resumes
            assert fut.done()
            now += 0.0001

    asyncio.run(scenario())


def test_while_reads_overlap_the_next_round_waits_for_company() -> None:
    async def scenario() -> None:
        ri = ReadIndex(itertools.count(1).__next__)
        _reads(ri, 8)
        ctx1 = ri.next_round(10.0)  # nothing before it: at once
        _answer(ri, ctx1, 1)
        (late,) = _reads(ri, 1)
        hold = HOLD_MAX  # nine reads were in progress together, one waits: not half of them
        assert ri.held_until(10.0) == 10.0 + hold
        assert not ri.ready_for_round(10.0) and ri.next_round(10.0) is None
        assert ri.next_round(10.0 + hold / 2) is None
        ctx2 = ri.next_round(10.0 + hold)
        assert ctx2 is not None and ri.held_until(10.0 + hold) == 0.0  # in flight: nothing is held
        _answer(ri, ctx2, 2)
        await asyncio.sleep(0)
        assert late.done()
        # the company is forgotten two windows later: a read right after a round is asked at once
        ctx3 = ri.next_round(10.0 + 1.5 * OVERLAP_WINDOW)  # a window ends: nine together in the last
        assert ctx3 is None  # (no read waiting)
        _reads(ri, 1)
        ctx3 = ri.next_round(10.0 + 1.5 * OVERLAP_WINDOW)
        _answer(ri, ctx3, 3)
        _reads(ri, 1)
        assert ri.held_until(10.0 + 1.5 * OVERLAP_WINDOW) > 0.0  # nine together lately: held
        later = 10.0 + 2.6 * OVERLAP_WINDOW  # the next window ends with one read in progress
        ri.held_until(later)
        assert ri.next_round(later) is not None

    asyncio.run(scenario())


def test_a_round_waiting_for_company_starts_once_half_of_it_waits() -> None:
    async def scenario() -> None:
        ri = ReadIndex(itertools.count(1).__next__)
        _reads(ri, 10)
        _answer(ri, ri.next_round(10.0), 1)
        await asyncio.sleep(0)  # the ten readers resume; their clients read again, one by one
        for n in range(1, 6):
            _reads(ri, 1)
            assert ri.ready_for_round(10.0) == (2 * n >= 10)
        ctx = ri.next_round(10.0)  # five of the ten wait: no need to wait out the hold
        assert ctx is not None

    asyncio.run(scenario())


def test_two_overlapping_reads_are_not_company_enough() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ri = ReadIndex(itertools.count(1).__next__)
        assert MIN_COMPANY > 2
        first, second = loop.create_future(), loop.create_future()
        ri.add(first)
        ctx = ri.next_round(10.0)
        ri.add(second)  # two in progress together
        _answer(ri, ctx, 1)
        assert ri.held_until(10.0) == 0.0 and ri.next_round(10.0) is not None

    asyncio.run(scenario())
