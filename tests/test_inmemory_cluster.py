"""Three members in one process over the in-memory transport (tests/support/inmemory.py): the
real server code with links that can be cut, for what is slow or awkward with processes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from pyetcd import errors
from pyetcd.raft import Message, MessageType
from pyetcd.server import node_loop
from pyetcd.server.etcd_server import EtcdServer
from pyetcd.storage.raftlog import RaftLog
from support.inmemory import MemCluster

pytestmark = pytest.mark.cluster


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_writes_replicate_and_a_cut_off_leader_is_replaced(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MemCluster(tmp_path) as c:
            lead = await c.wait_leader()
            follower = (lead + 1) % 3
            resp = await c.put(follower, b"k", b"v1")  # a follower's proposal reaches the leader
            # the follower answered once it applied the put; the leader may publish its own apply
            # later (commit news leaves before its store commit), so wait for the follower's index
            await c.wait_applied(c.server(follower).loop.applied_index)
            assert all(c.get(i, b"k") == b"v1" for i in range(3))
            c.isolate(lead)
            rest = [i for i in range(3) if i != lead]
            new = await c.wait_leader(among=rest)
            assert new != lead
            await c.put(rest[0], b"k", b"v2")
            # the old leader cannot serve a linearizable read: it cannot reach a quorum
            with pytest.raises(errors.ErrTimeout):
                await asyncio.wait_for(c.server(lead).linearizable_read(), 20)
            c.heal()
            await c.wait_leader()
            await c.wait_applied(max(s.loop.applied_index for s in c.live()))
            assert all(c.get(i, b"k") == b"v2" for i in range(3))
            assert resp.header.revision == 2

    run(scenario())


def test_lagging_member_installs_the_leaders_snapshot_and_watch_state_follows(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MemCluster(tmp_path, snapshot_count=20, snapshot_catchup_entries=5) as c:
            lead = await c.wait_leader()
            lagging = (lead + 1) % 3
            behind = c.server(lagging).loop.parts.raftlog.last_index()
            await c.stop(lagging)
            # puts until the leader's log no longer holds what the lagging member lacks: only entries
            # a store commit made durable may go, and a lone client's commits are held (node_loop),
            # so how many puts that takes depends on timing
            leader_log = c.server(lead).loop.parts.raftlog
            puts = 0
            while puts < 60 or leader_log.first_index() <= behind + 1:
                await c.put(lead, f"key{puts}".encode(), b"x")
                puts += 1
                assert puts < 5000, "the leader never compacted its log"
            await c.restart(lagging)
            await c.wait_applied(c.server(lead).loop.applied_index)
            s = c.server(lagging)
            assert c.get(lagging, f"key{puts - 1}".encode()) == b"x"
            assert s.kv.current_rev == c.server(lead).kv.current_rev
            assert s.installer.installed == 1 and c.server(lead).installer.sent >= 1  # through a snapshot
            h_lead = c.server(lead).hash_kv(0)
            assert s.hash_kv(0) == h_lead

    run(scenario())


def _count_rounds(server: EtcdServer) -> list[object]:
    """Every read the member's node loop is asked to put in a ReadIndex round, recorded."""
    rounds: list[object] = []
    ask = server.loop.read

    def recorded(fut: asyncio.Future[None]) -> None:
        rounds.append(fut)
        ask(fut)

    server.loop.read = recorded  # type: ignore[method-assign]
    return rounds


def test_a_lone_voter_serves_linearizable_reads_without_a_round_once_it_has_applied_its_log(tmp_path: Path) -> None:
    """NodeLoop.reads_are_local: a leader that is the only voter reads what it has published; one
    that has not applied all it knows committed (a restart replaying its log) asks its core, as
    does a leader with other voters."""
    async def scenario() -> None:
        async with MemCluster(tmp_path / "one", size=1) as c:
            await c.wait_leader()
            await c.put(0, b"k", b"v1")
            lone = c.server(0)
            rounds = _count_rounds(lone)
            await asyncio.wait_for(lone.linearizable_read(), 5)
            assert rounds == [] and c.get(0, b"k") == b"v1"
            lone.loop.commit_index = lone.loop.applied_index + 1  # as after a restart, before the replay
            await asyncio.wait_for(lone.linearizable_read(), 5)
            assert len(rounds) == 1
        async with MemCluster(tmp_path / "three") as c:
            leader = c.server(await c.wait_leader())
            await c.put(0, b"k", b"v1")
            rounds = _count_rounds(leader)
            await asyncio.wait_for(leader.linearizable_read(), 5)
            assert len(rounds) == 1

    run(scenario())


def test_overlapping_reads_share_read_index_rounds_and_a_lone_reader_never_waits(tmp_path: Path) -> None:
    """server/read_index.py through the real node loop: twelve readers reading in a loop at a
    three-member leader share rounds (each one waits until half of them are waiting, or its
    hold ends); one reader alone asks a round per read."""
    async def scenario() -> None:
        async with MemCluster(tmp_path / "three") as c:
            leader = c.server(await c.wait_leader())
            await c.put(0, b"k", b"v1")
            rounds: list[bytes] = []
            ask = leader.loop.node.read_index

            def recorded(ctx: bytes) -> None:
                rounds.append(ctx)
                ask(ctx)

            leader.loop.node.read_index = recorded  # type: ignore[method-assign]

            async def reader(reads: int, pause: float) -> None:
                for _ in range(reads):
                    await asyncio.wait_for(leader.linearizable_read(), 10)
                    await asyncio.sleep(pause)  # readers out of step, as clients are

            await reader(10, 0.0)
            assert len(rounds) == 10
            rounds.clear()
            await asyncio.gather(*(reader(20, 0.0002 * i) for i in range(12)))
            assert len(rounds) <= 240 // 4, f"{len(rounds)} rounds for 240 reads"

    run(scenario())


@pytest.mark.parametrize("delay", [0.0, 0.05])
def test_followers_learn_a_commit_from_the_next_append_or_soon_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     delay: float) -> None:
    """node_loop.COMMIT_NEWS_DELAY through the real node loop: a lone client's puts at the leader
    cost each follower one append per put, not two (0: etcd's append of its own for each commit),
    and with the leader's heartbeats stopped the last put still reaches the followers' stores."""
    monkeypatch.setattr(node_loop, "COMMIT_NEWS_DELAY", delay)

    async def scenario() -> None:
        async with MemCluster(tmp_path) as c:
            lead = await c.wait_leader()
            leader = c.server(lead)
            leader.loop.node.tick = lambda: None  # type: ignore[method-assign]  # no heartbeat tells the commit
            appends: list[Message] = []
            send = leader.peers.send

            def recorded(messages: list[Message]) -> None:
                appends.extend(m for m in messages if m.type is MessageType.MSG_APP)
                send(messages)

            leader.peers.send = recorded  # type: ignore[method-assign]
            for i in range(20):
                await c.put(lead, b"k%d" % i, b"v")
            await c.wait_applied(leader.loop.applied_index, timeout=delay + 0.1)  # before a follower campaigns
            per_follower = Counter(m.to for m in appends)
            assert len(per_follower) == 2
            if delay:
                assert max(per_follower.values()) <= 20 + 5, per_follower
            else:
                assert min(per_follower.values()) >= 2 * 20 - 3, per_follower

    run(scenario())


@pytest.mark.parametrize("stable_news", [True, False])
def test_a_followers_client_is_answered_before_its_leader_can_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    stable_news: bool) -> None:
    """node_loop.STABLE_NEWS through the real node loop: with no answer to its appends reaching the
    leader, a follower still commits and answers its client's put on the leader's word that its log
    is durable, and the leader serves no linearizable read that would miss that put until it has
    committed it too. Off, the put waits for the leader's commit."""
    monkeypatch.setattr(node_loop, "STABLE_NEWS", stable_news)

    async def scenario() -> None:
        async with MemCluster(tmp_path) as c:
            lead = await c.wait_leader()
            follower = (lead + 1) % 3
            c.net.drops.append(lambda m: m.type is MessageType.MSG_APP_RESP)
            put = asyncio.ensure_future(c.put(follower, b"k", b"v"))
            done, _ = await asyncio.wait([put], timeout=2)
            assert bool(done) is stable_news
            if not stable_news:
                c.heal()
                await put
                return
            assert c.get(follower, b"k") == b"v"
            leader = c.server(lead)
            assert leader.loop.commit_index < c.server(follower).loop.commit_index
            read = asyncio.ensure_future(leader.linearizable_read())
            done, _ = await asyncio.wait([read], timeout=0.5)
            assert not done  # it would not see the put yet
            c.heal()
            await asyncio.wait_for(read, 10)
            assert c.get(lead, b"k") == b"v"

    run(scenario())


@pytest.mark.parametrize("force_new_cluster", [False, True])
def test_a_member_whose_log_lost_its_last_commit_index_restarts_with_what_it_applied(
        tmp_path: Path, force_new_cluster: bool) -> None:
    """A commit index alone is written without fdatasync (WalBatch.must_sync): a power loss may
    take it while the store kept what it let the member apply. Such a member restarts (its core
    would refuse an applied index past the commit index) and keeps serving its data; with
    --force-new-cluster too, which discards the entries past the commit index: none it applied."""
    async def scenario() -> None:
        async with MemCluster(tmp_path, size=1) as c:
            await c.wait_leader()
            for i in range(5):
                await c.put(0, b"k", b"v%d" % i)
            applied = c.server(0).loop.applied_index
            await c.stop(0)
            log = RaftLog(tmp_path / "m0" / "member" / "raft")
            log.load()
            assert log.hard_state.commit >= applied
            txn = log.begin_write()  # the log as a power loss could leave it
            log.persist(txn, [], dataclasses.replace(log.hard_state, commit=applied - 3))
            txn.commit()
            log.close()
            c.cfg["force_new_cluster"] = force_new_cluster
            await c.restart(0)
            await c.wait_leader()
            assert c.server(0).loop.commit_index >= applied and c.get(0, b"k") == b"v4"
            await c.put(0, b"k", b"v5")
            assert c.get(0, b"k") == b"v5"

    run(scenario())
