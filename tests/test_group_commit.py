"""Group commit under load (server/group_commit.py): the node loop waits after a busy turn only
while waiting measurably applies more per second (on a cluster: only while requests already
spend long in the member), a lone client never waits, and its turns run on the event loop
(LoneClient) while turns that others could join run on the apply thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from pyetcd.server import group_commit
from pyetcd.server.group_commit import BUSY_TURN_ENTRIES, INLINE_TURN_ENTRIES, GroupCommit, LoneClient
from support.clock import ManualClock
from support.inmemory import MemCluster

WINDOW = 0.004


def drive(gc: GroupCommit, clock: ManualClock, seconds: float, entries_per_second: dict[bool, float]) -> list[float]:
    """Busy turns every 5 ms for ``seconds``; each turn carries what the load yields per second with
    the setting in use (``entries_per_second[waiting]``). Returns the waits asked for."""
    waits = []
    end = clock.now + seconds
    while clock.now < end:
        clock.now += 0.005
        per_turn = max(BUSY_TURN_ENTRIES, round(entries_per_second[gc.waiting] * 0.005))
        waits.append(gc.after_turn(per_turn))
    return waits


def test_keeps_waiting_when_waiting_applies_more() -> None:
    clock = ManualClock()
    gc = GroupCommit(WINDOW, clock)
    drive(gc, clock, 2 * group_commit.TRIAL_SECONDS + 0.05, {False: 4000, True: 6000})
    assert gc.waiting
    waits = drive(gc, clock, group_commit.HOLD_SECONDS / 2, {False: 4000, True: 6000})
    assert set(waits) == {WINDOW}  # held: every busy turn waits


def test_stops_waiting_when_waiting_applies_less() -> None:
    clock = ManualClock()
    gc = GroupCommit(WINDOW, clock)
    drive(gc, clock, 2 * group_commit.TRIAL_SECONDS + 0.05, {False: 4000, True: 2500})
    assert not gc.waiting
    assert set(drive(gc, clock, group_commit.HOLD_SECONDS / 2, {False: 4000, True: 2500})) == {0.0}


def test_measures_again_after_holding_and_after_a_pause() -> None:
    clock = ManualClock()
    gc = GroupCommit(WINDOW, clock)
    drive(gc, clock, 2 * group_commit.TRIAL_SECONDS + 0.05, {False: 4000, True: 2500})
    assert not gc.waiting
    # the load changes: waiting now pays; found at the next measurement after the hold
    drive(gc, clock, group_commit.HOLD_SECONDS + 2 * group_commit.TRIAL_SECONDS + 0.05, {False: 3000, True: 6000})
    assert gc.waiting
    clock.now += group_commit.IDLE_SECONDS + 1  # a pause: measure afresh, starting without waiting
    assert gc.after_turn(BUSY_TURN_ENTRIES) == 0.0


class ClusterMember:
    """Drives one cluster member's GroupCommit: a turn every 5 ms, ``in_flight`` client
    proposals waiting and ``per_second`` arriving."""

    def __init__(self, window: float) -> None:
        self.clock = ManualClock()
        self.gc = GroupCommit(window, self.clock)
        self.arrived = 0.0

    def turns(self, seconds: float, in_flight: int, per_second: int, entries: int = BUSY_TURN_ENTRIES) -> list[float]:
        """The waits asked for after each turn."""
        waits = []
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.now += 0.005
            self.arrived += per_second * 0.005
            waits.append(self.gc.after_turn(entries, 3, in_flight, int(self.arrived)))
        return waits


def test_a_cluster_member_waits_only_while_requests_queue_long() -> None:
    """100 clients on three members: 33 in flight here, 1,000 arriving a second, so a request
    spends 33 ms in the member and a 4 ms wait is an eighth of it. 16 clients on this member at
    1,700 a second: 9 ms, and waiting would cost a third of the throughput (the docstring)."""
    member = ClusterMember(0.006)
    wait = group_commit.CLUSTER_WAIT
    waits = member.turns(1.0, in_flight=33, per_second=1000)
    assert waits[0] == 0.0  # no estimate yet
    assert set(waits[-100:]) == {wait}
    assert set(member.turns(0.05, in_flight=33, per_second=1000, entries=BUSY_TURN_ENTRIES - 1)) == {0.0}
    assert set(member.turns(1.0, in_flight=16, per_second=1700)[-100:]) == {0.0}
    assert wait * 5 > 16 / 1700 and wait * 5 < 33 / 1000  # the two cases stand either side of the rule


def test_a_cluster_member_starts_over_after_a_pause_and_a_zero_window_never_waits() -> None:
    member = ClusterMember(0.006)
    assert set(member.turns(1.0, in_flight=33, per_second=1000)[-100:]) == {group_commit.CLUSTER_WAIT}
    member.clock.now += group_commit.IDLE_SECONDS + 1  # the arrival count now spans a pause
    assert set(member.turns(group_commit.RATE_SECONDS / 2, in_flight=33, per_second=1000)) == {0.0}
    assert set(member.turns(1.0, in_flight=33, per_second=1000)[-100:]) == {group_commit.CLUSTER_WAIT}
    assert set(ClusterMember(0.0).turns(1.0, in_flight=33, per_second=1000)) == {0.0}


def test_quiet_turns_and_a_zero_window_never_wait() -> None:
    clock = ManualClock()
    gc = GroupCommit(WINDOW, clock)
    drive(gc, clock, 2 * group_commit.TRIAL_SECONDS + 0.05, {False: 4000, True: 6000})
    assert gc.waiting and gc.after_turn(BUSY_TURN_ENTRIES - 1) == 0.0
    off = GroupCommit(0.0, clock)
    assert set(drive(off, clock, 1.0, {False: 4000, True: 6000})) == {0.0}


def test_inline_only_for_small_turns_after_a_quiet_period() -> None:
    clock = ManualClock()
    lone = LoneClient(True, clock)
    assert lone.inline(INLINE_TURN_ENTRIES, 1, 1, False)
    assert not lone.inline(INLINE_TURN_ENTRIES + 1, 1, 1, False)  # a turn others' requests joined
    assert not lone.inline(1, 1, 3, False)  # a cluster whose messages the event loop must send
    assert lone.inline(1, 1, 3, True)  # ... or one whose transport sends them from the turn
    assert not lone.inline(1, 2, 1, False)  # two proposals in flight: others may join the next turns
    clock.now += group_commit.SHARED_QUIET_SECONDS / 2
    assert not lone.inline(1, 1, 1, False)  # still within the quiet period after sharing
    assert not lone.inline(1, 1, 3, True)
    clock.now += group_commit.SHARED_QUIET_SECONDS
    assert lone.inline(1, 1, 1, False)
    assert not LoneClient(False, clock).inline(1, 0, 1, False)  # PYETCD_INLINE_TURNS=0


def test_the_store_transaction_is_held_only_while_neither_proposals_nor_reads_share_the_member() -> None:
    clock = ManualClock()
    lone = LoneClient(True, clock)
    assert not lone.inline(1, 1, 3, False) and lone.hold(0)  # a cluster's lone client holds too
    lone.inline(1, 2, 3, False)
    assert not lone.hold(0)  # two proposals in flight
    clock.now += group_commit.SHARED_QUIET_SECONDS + 0.01
    assert lone.hold(0)
    assert not lone.hold(1)  # a read had to commit the held transaction first
    clock.now += group_commit.SHARED_QUIET_SECONDS / 2
    assert not lone.hold(1)
    clock.now += group_commit.SHARED_QUIET_SECONDS
    assert lone.hold(1)  # no read since


async def quiet(c: MemCluster) -> None:
    """Every member published its attributes and every member applied all that was committed:
    from here on, only the test's own proposals make turns."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not all(r.name and r.client_urls for s in c.live() for r in s.members_snapshot()[1]):
        assert loop.time() < deadline, "the members did not publish their attributes after start-up"
        await asyncio.sleep(0.02)
    await c.wait_applied(max(s.loop.commit_index for s in c.live()))


@pytest.mark.parametrize("size", [1, 3])
def test_a_lone_client_never_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """With a window of 30 s, one wait would miss the deadline of the put that follows it."""
    monkeypatch.setattr(group_commit, "TRIAL_SECONDS", 0.01)  # the waiting trial starts at once

    async def scenario() -> None:
        async with MemCluster(tmp_path, size=size) as c:
            lead = await c.wait_leader()
            await quiet(c)  # past the start-up turns (conf changes, members publishing their names)
            for s in c.live():
                s.loop.group_commit.window = 30.0
            for i in range(20):  # one at a time: every turn carries one entry
                await asyncio.wait_for(c.put(lead, b"k%d" % i, b"v"), 10)
                await asyncio.sleep(0.005)
            assert c.get(lead, b"k19") == b"v"

    asyncio.run(scenario())


def test_a_lone_clients_turns_run_on_the_event_loop_and_shared_ones_on_the_apply_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(group_commit, "SHARED_QUIET_SECONDS", 0.05)

    async def scenario() -> None:
        async with MemCluster(tmp_path, size=1) as c:
            lead = await c.wait_leader()
            await quiet(c)
            node_loop = c.server(lead).loop
            threads: list[str] = []
            turn = node_loop._turn

            def spy(*args: object) -> object:
                threads.append(threading.current_thread().name)
                return turn(*args)  # type: ignore[arg-type]
            monkeypatch.setattr(node_loop, "_turn", spy)
            await asyncio.sleep(0.1)  # past the quiet period
            for i in range(5):
                await c.put(lead, b"lone%d" % i, b"v")
            assert threads and set(threads) == {threading.current_thread().name}, threads
            threads.clear()
            await asyncio.gather(*(c.put(lead, b"shared%d" % i, b"v") for i in range(20)))
            assert any(name.startswith("apply") for name in threads), threads
            assert c.get(lead, b"lone4") == b"v" and c.get(lead, b"shared19") == b"v"

    asyncio.run(scenario())
