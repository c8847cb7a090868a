"""One seeded robustness run, end to end: start, record traffic under a fault, recover, judge.

One member or a cluster (``RunConfig.members``): clients, watchers and the compactor are spread
over the members. At the end every member must reach the final read's revision, hold exactly
the final read's keys there (serializable reads: its own state) and the same HashKV.

The run directory keeps the members' data and logs, ``history.json`` and ``report.txt``; it is
deleted after a clean run unless asked to keep it, and always kept after a failing one.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from pyetcd.api import rpc_pb2
from robustness import faults
from robustness.cluster import Cluster
from robustness.evaluate import CHECK_TIMEOUT, Verdict, evaluate, lost_writes
from robustness.history import History
from robustness.leases import LeaseKeeper, activity, await_expiry
from robustness.traffic import Client, Compactor, Endpoint, Shared, Watcher, execute, record
from support.member import Member
from support.tls import CertPaths

FINAL_TIMEOUT = 30.0
CATCH_UP_TIMEOUT = 10.0
AFTER_RESUME = 2.0  # seconds of traffic after a lease-pause fault ends: expired leases meet their clients
KEEPER_IDS = 100  # client ids of lease keepers start here; -4 asks the leases' time-to-live at the end


@dataclass
class RunConfig:
    seed: int
    base: Path
    certs: CertPaths
    kind: str = "pyetcd"
    fault: str = "random"
    duration: float = 4.0
    clients: int = 6
    watchers: int = 3
    failpoints: str = ""  # PYETCD_FAILPOINTS for the whole run (the selftest's deliberate bugs)
    keep: bool = False
    members: int = 1
    check_timeout: float = CHECK_TIMEOUT


@dataclass
class RunResult:
    seed: int
    kind: str
    fault: str
    fired: bool
    ops: int
    verdict: Verdict
    dir: Path
    log: list[str] = field(default_factory=list)
    error: str = ""
    members: int = 1
    leases: str = ""  # what the short leases went through (lease-pause runs)

    @property
    def failed(self) -> bool:
        return self.verdict.failed or bool(self.error)

    @property
    def inconclusive(self) -> bool:
        """The checker gave up in time: neither passed nor failed (kept, like a failure, for a look)."""
        return not self.failed and self.verdict.linearizable is None

    @property
    def status(self) -> str:
        return "FAIL" if self.failed else "INCONCLUSIVE" if self.inconclusive else "ok"

    def line(self) -> str:
        v = self.verdict
        status = self.status
        return (f"run seed={self.seed} {self.kind} members={self.members} "
                f"fault={self.fault}{'' if self.fired else '(not fired)'} "
                f"ops={self.ops} acked={v.acked_writes} lost={len(v.lost)} "
                f"linearizable={v.linearizable} watch={len(v.watch)} check={v.check_seconds:.1f}s {status}")


def _final_read(h: History, members: list[Member]) -> tuple[Any, ...]:
    """The final linearizable read of every key, recorded; retried (member after member) until one answers."""
    deadline = time.monotonic() + FINAL_TIMEOUT
    n = 0
    while True:
        member = members[n % len(members)]
        n += 1
        ep = Endpoint(member)
        try:
            out = record(h, ep, -2, ("get", "\0", "\0", False))
        finally:
            ep.close()
        if out is not None and out[0] == "ok":
            return out
        if time.monotonic() > deadline:
            raise RuntimeError(f"no final read within {FINAL_TIMEOUT:.0f}s: {member.log_tail(10)}")
        time.sleep(0.2)


def _member_state(member: Member, revision: int) -> tuple[int, tuple[Any, ...]] | str:
    """(revision, every key) as ``member`` serves them from its own state once it reached ``revision``;
    what went wrong if it did not within FINAL_TIMEOUT (a member that never catches up is a finding)."""
    deadline = time.monotonic() + FINAL_TIMEOUT
    ep = Endpoint(member)
    last = "no answer"
    try:
        while True:
            try:
                out = execute(ep, ("get", "\0", "\0", True), timeout=2)
                if out[1] >= revision:
                    return out[1], out[2]
                last = f"at revision {out[1]}"
            except grpc.RpcError as e:
                last = f"{e.code().name}: {e.details()}"
            if time.monotonic() > deadline:
                return (f"{member.name} did not reach the final revision {revision} in {FINAL_TIMEOUT:.0f}s "
                        f"(last: {last}; running: {member.running})")
            time.sleep(0.1)
    finally:
        ep.close()


def _hashkv(members: list[Member], revision: int) -> dict[str, tuple[int, int, int]]:
    """(revision, compact revision, hash) of every member at ``revision``; asked again while they differ
    (a compaction applied by one member and not yet by another moves its hash)."""
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while True:
        out: dict[str, tuple[int, int, int]] = {}
        for m in members:
            ep = Endpoint(m)
            try:
                r = ep.maint.HashKV(rpc_pb2.HashKVRequest(revision=revision), timeout=5)
                out[m.name] = (revision, r.compact_revision, r.hash)
            except grpc.RpcError as e:  # reported as a difference: every member must answer
                out[m.name] = (revision, -1, hash(f"{e.code().name}: {e.details()}"))
            finally:
                ep.close()
        if len(set(out.values())) == 1 or time.monotonic() > deadline:
            return out
        time.sleep(0.3)


def _check_members(h: History, members: list[Member], final: tuple[Any, ...]) -> list[str]:
    """Every member at the final revision holds exactly the final read's keys (so every acknowledged
    write), and the same HashKV there."""
    out = []
    for m in members:
        state = _member_state(m, final[1])
        if isinstance(state, str):
            out.append(state)
            continue
        rev, kvs = state
        if rev != final[1]:
            out.append(f"{m.name} is at revision {rev}, past the final read's {final[1]} with no traffic")
        elif kvs != final[2]:
            out.append(f"{m.name} at revision {rev} holds {kvs}, the final read {final[2]}")
        out += [f"{m.name}: lost write: {x}" for x in lost_writes(h, ("ok", rev, kvs))]
    hashes = _hashkv(members, final[1])
    if len(set(hashes.values())) > 1:
        out.append(f"HashKV (revision, compact revision, hash) differs between members: {hashes}")
    return out


def _defragment(member: Member) -> None:
    ep = Endpoint(member)
    try:
        ep.maint.Defragment(rpc_pb2.DefragmentRequest(), timeout=5)
    except grpc.RpcError:
        pass  # a crash at a defrag failpoint is the point
    finally:
        ep.close()


def run_once(cfg: RunConfig) -> RunResult:
    rng = random.Random(cfg.seed)
    fault = faults.plan(cfg.fault, cfg.kind, rng, cfg.members)
    bug = f"-{cfg.failpoints.partition('=')[0]}" if cfg.failpoints else ""
    size = f"-{cfg.members}m" if cfg.members > 1 else ""
    run_dir = cfg.base / f"{cfg.kind}-{cfg.seed}{size}-{fault.label.replace(':', '-')}{bug}"
    shutil.rmtree(run_dir, ignore_errors=True)
    h = History()
    h.members = cfg.members
    result = RunResult(cfg.seed, cfg.kind, fault.label, False, 0, Verdict(), run_dir, members=cfg.members)
    stop, wstop = threading.Event(), threading.Event()
    watchers: list[Watcher] = []
    cluster: Cluster | None = None
    try:
        cluster = Cluster(cfg.kind, run_dir, cfg.certs, cfg.members)
        members = cluster.members
        for i, m in enumerate(members):
            env = dict(fault.env) if i == fault.member else {}
            if cfg.failpoints:
                env["PYETCD_FAILPOINTS"] = ",".join(filter(None, [env.get("PYETCD_FAILPOINTS"), cfg.failpoints]))
            if env:
                m.env = {**env, "PYETCD_FAILPOINTS_SEED": str(cfg.seed)}
                m.restart()
        h.t0 = time.monotonic()
        shared = Shared(leases=[])
        pick = lambda: rng.choice(members)  # noqa: E731
        # etcd 3.4.23 answers a progress request ahead of queued events (etcd-io/etcd#15220, fixed by
        # #15237 after it): against real etcd, progress is asked for only once the traffic stopped
        progress = 0.2 if cfg.kind == "pyetcd" else None
        oracle = Watcher(h, h.watch("\0", "\0", True, 1), members[0], wstop, progress)
        watchers.append(oracle)
        oracle.start()
        compactor = Compactor(h, pick(), random.Random(rng.random()), stop,
                              lambda: min(oracle.rec.last_seen(), shared.latest_rev))
        clients = [Client(i, h, members[i % len(members)], random.Random(rng.random()), stop, shared,
                          rng.randrange(1, 2**40)) for i in range(cfg.clients)]
        keepers = [LeaseKeeper(KEEPER_IDS + i, h, members[i % len(members)], random.Random(rng.random()), stop,
                               shared, fault.lease_ttl, rng.randrange(1, 2**40))
                   for i in range(max(2, cfg.members) if fault.lease_ttl else 0)]
        # with several members a crash bounds nothing (see faults.Injector)
        crashed = h.crashed if cfg.members == 1 else (lambda down, up: None)
        injector = faults.Injector(fault, cluster, random.Random(rng.random()), stop, h.now, _defragment, crashed)
        for t in (compactor, *clients, *keepers, injector):
            t.start()
        t_end = time.monotonic() + cfg.duration
        for _ in range(cfg.watchers):  # watchers from random past revisions, started during traffic
            if stop.wait(rng.uniform(0.1, cfg.duration / (cfg.watchers + 1))):
                break
            lo = max(compactor.done + 1, shared.latest_rev - 30)  # in the past, but not yet compacted
            start = rng.randint(lo, max(lo, shared.latest_rev))
            key, end = rng.choice([("k/", "k0"), ("k/1", "k/2"), (rng.choice(["k/1", "k/2"]), None)])
            w = Watcher(h, h.watch(key, end, rng.random() < 0.5, start), pick(), wstop, progress)
            watchers.append(w)
            w.start()
        stop.wait(max(0.0, t_end - time.monotonic()))
        if fault.lease_ttl:  # the traffic goes on past the resume
            injector.join(60)
            stop.wait(AFTER_RESUME)
        stop.set()
        traffic_end = h.now()
        for t in (compactor, *clients, *keepers):
            t.join(30)
        injector.join(90)
        injector.recover()
        result.fired, result.log = injector.fired, injector.log
        if injector.error is not None:
            raise injector.error
        cluster.heal()
        for m in members:
            if not m.running:
                m.restart()
        never_expired = await_expiry(h, members, -4)  # before the final read: expiries change the keys
        final = _final_read(h, members)
        time.sleep(0.5)  # let queued events drain before any progress request (see above)
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        while time.monotonic() < deadline and any(
                w.rec.last_seen() < final[1] and not w.rec.compacted() for w in watchers):
            for w in watchers:
                w.request_progress()
            time.sleep(0.2)
        wstop.set()
        for w in watchers:
            w.close()
        for w in watchers:
            w.join(10)
        member_findings = _check_members(h, members, final)
        result.ops = len(h.ops)
        result.verdict = evaluate(h, final, timeout=cfg.check_timeout)
        result.verdict.hash += member_findings
        result.verdict.leases += never_expired
        if keepers:
            result.leases = activity(h, traffic_end)
            result.log.append(result.leases)
    except Exception as e:  # a run that could not finish is a failed run, kept for a look
        result.error = f"{type(e).__name__}: {e}"
    finally:
        stop.set()
        wstop.set()
        for w in watchers:
            w.close()
        if cluster is not None:
            cluster.close()
    _report(result, h, cfg)
    return result


def _report(result: RunResult, h: History, cfg: RunConfig) -> None:
    if result.failed or result.inconclusive or cfg.keep:
        result.dir.mkdir(parents=True, exist_ok=True)
        h.save(result.dir / "history.json")
        lines = [result.line(), *result.log, *result.verdict.findings()]
        if result.error:
            lines.append(f"run error: {result.error}")
        (result.dir / "report.txt").write_text("\n".join(lines) + "\n")
    else:
        shutil.rmtree(result.dir, ignore_errors=True)


def replay_check(path: Path) -> Verdict:
    """Judge a kept ``history.json`` again (after a checker change), without any member."""
    h = History.load(path)
    finals = [op for op in h.ops if op.client == -2 and op.output is not None and op.output[0] == "ok"]
    return evaluate(h, finals[-1].output)


__all__ = ["RunConfig", "RunResult", "execute", "replay_check", "run_once"]
