"""One seeded robustness run, end to end: start, record traffic under a fault, recover, judge.

The run directory keeps the member's data and log, ``history.json`` and ``report.txt``; it is
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
from robustness.evaluate import Verdict, evaluate
from robustness.history import History
from robustness.traffic import Client, Compactor, Endpoint, Shared, Watcher, execute, record
from support.member import Member, start_member
from support.tls import CertPaths

FINAL_TIMEOUT = 30.0
CATCH_UP_TIMEOUT = 10.0


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

    @property
    def failed(self) -> bool:
        return self.verdict.failed or bool(self.error)

    def line(self) -> str:
        v = self.verdict
        status = "FAIL" if self.failed else "ok"
        return (f"run seed={self.seed} {self.kind} fault={self.fault}{'' if self.fired else '(not fired)'} "
                f"ops={self.ops} acked={v.acked_writes} lost={len(v.lost)} "
                f"linearizable={v.linearizable} watch={len(v.watch)} check={v.check_seconds:.1f}s {status}")


def _final_read(h: History, member: Member) -> tuple[Any, ...]:
    """The final linearizable read of every key, recorded; retried until the member answers."""
    deadline = time.monotonic() + FINAL_TIMEOUT
    ep = Endpoint(member)
    try:
        while True:
            out = record(h, ep, -2, ("get", "\0", "\0", False))
            if out is not None and out[0] == "ok":
                return out
            if time.monotonic() > deadline:
                raise RuntimeError(f"no final read within {FINAL_TIMEOUT:.0f}s: {member.log_tail(10)}")
            time.sleep(0.2)
    finally:
        ep.close()


def _hashkv(members: list[Member]) -> dict[str, tuple[int, int]]:
    """(revision, hash) of every member; the same revision is asked of each once they agree on it."""
    out: dict[str, tuple[int, int]] = {}
    for m in members:
        ep = Endpoint(m)
        try:
            r = ep.maint.HashKV(rpc_pb2.HashKVRequest(revision=0), timeout=5)
            out[m.name] = (r.header.revision, r.hash)
        finally:
            ep.close()
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
    fault = faults.plan(cfg.fault, cfg.kind, rng)
    bug = f"-{cfg.failpoints.partition('=')[0]}" if cfg.failpoints else ""
    run_dir = cfg.base / f"{cfg.kind}-{cfg.seed}-{fault.label.replace(':', '-')}{bug}"
    shutil.rmtree(run_dir, ignore_errors=True)
    h = History()
    member = start_member(cfg.kind, run_dir / "m0", cfg.certs)
    stop, wstop = threading.Event(), threading.Event()
    watchers: list[Watcher] = []
    result = RunResult(cfg.seed, cfg.kind, fault.label, False, 0, Verdict(), run_dir)
    try:
        env = dict(fault.env)
        if cfg.failpoints:
            env["PYETCD_FAILPOINTS"] = ",".join(filter(None, [env.get("PYETCD_FAILPOINTS"), cfg.failpoints]))
        if env:
            member.env = {**env, "PYETCD_FAILPOINTS_SEED": str(cfg.seed)}
            member.restart()
        h.t0 = time.monotonic()
        shared = Shared(leases=[])
        # etcd 3.4.23 answers a progress request ahead of queued events (etcd-io/etcd#15220, fixed by
        # #15237 after it): against real etcd, progress is asked for only once the traffic stopped
        progress = 0.2 if cfg.kind == "pyetcd" else None
        oracle = Watcher(h, h.watch("\0", "\0", True, 1), member, wstop, progress)
        watchers.append(oracle)
        oracle.start()
        compactor = Compactor(h, member, random.Random(rng.random()), stop,
                              lambda: min(oracle.rec.last_seen(), shared.latest_rev))
        clients = [Client(i, h, member, random.Random(rng.random()), stop, shared, rng.randrange(1, 2**40))
                   for i in range(cfg.clients)]
        injector = faults.Injector(fault, member, random.Random(rng.random()), stop, h.now,
                                   lambda: _defragment(member), h.crashed)
        for t in (compactor, *clients, injector):
            t.start()
        t_end = time.monotonic() + cfg.duration
        for _ in range(cfg.watchers):  # watchers from random past revisions, started during traffic
            if stop.wait(rng.uniform(0.1, cfg.duration / (cfg.watchers + 1))):
                break
            lo = max(compactor.done + 1, shared.latest_rev - 30)  # in the past, but not yet compacted
            start = rng.randint(lo, max(lo, shared.latest_rev))
            key, end = rng.choice([("k/", "k0"), ("k/1", "k/2"), (rng.choice(["k/1", "k/2"]), None)])
            w = Watcher(h, h.watch(key, end, rng.random() < 0.5, start), member, wstop, progress)
            watchers.append(w)
            w.start()
        stop.wait(max(0.0, t_end - time.monotonic()))
        stop.set()
        for t in (compactor, *clients):
            t.join(30)
        injector.join(60)
        injector.recover()
        result.fired, result.log = injector.fired, injector.log
        if injector.error is not None:
            raise injector.error
        if not member.running:
            member.restart()
        final = _final_read(h, member)
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
        hashes = _hashkv([member])
        result.ops = len(h.ops)
        result.verdict = evaluate(h, final, hashes)
    except Exception as e:  # a run that could not finish is a failed run, kept for a look
        result.error = f"{type(e).__name__}: {e}"
    finally:
        stop.set()
        wstop.set()
        for w in watchers:
            w.close()
        member.stop()
    _report(result, h, cfg)
    return result


def _report(result: RunResult, h: History, cfg: RunConfig) -> None:
    if result.failed or cfg.keep:
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
