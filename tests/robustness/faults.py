"""Seeded faults injected while traffic runs, on real member processes.

Single member today: kill -9 then restart, SIGSTOP/SIGCONT, and (pyetcd only) a crash at a
named failpoint inside the server (``pyetcd.failpoints``), armed by restarting the member with
``PYETCD_FAILPOINTS`` before traffic starts; after the crash the member restarts without it.
Multi-member faults (partitions, blackholes, delays and drops through ``support.proxy``,
member replacement, leader kills) plug in here as more ``Fault`` kinds once clusters land.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from support.member import Member

# failpoint -> (min, max) hits to let pass before the crash: a crash lands mid-traffic, not at start
CRASH_POINTS: dict[str, tuple[int, int]] = {
    "turn.before_persist": (100, 500),
    "turn.between_commits": (100, 500),  # raft log durable, the store not yet: replayed at restart
    "turn.after_persist": (100, 500),
    "apply.before": (150, 700),
    "compact.before": (3, 15),
    "compact.after": (3, 15),
    "defrag.after_copy": (0, 0),
    "defrag.before_swap": (0, 0),
    "defrag.after_swap": (0, 0),
}
PROCESS_FAULTS = ("kill", "pause")
FAULT_KINDS = {"etcd": PROCESS_FAULTS, "pyetcd": (*PROCESS_FAULTS, "failpoint")}


@dataclass
class Fault:
    """One planned fault: its kind, the failpoint (if any) and the environment it needs at start."""

    kind: str
    point: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.point}" if self.point else self.kind


def plan(kind: str, member_kind: str, rng: random.Random) -> Fault:
    """A fault of ``kind`` ("random" picks one the member kind supports; "none" is none)."""
    if kind == "random":
        kind = rng.choice(FAULT_KINDS[member_kind])
    if kind == "none":
        return Fault("none")
    if kind in PROCESS_FAULTS:
        return Fault(kind)
    point = kind.partition(":")[2] if ":" in kind else rng.choice(sorted(CRASH_POINTS))
    if member_kind != "pyetcd":
        raise ValueError(f"failpoints exist only inside pyetcd, not {member_kind}")
    if point not in CRASH_POINTS:
        raise ValueError(f"unknown failpoint {point!r}; one of {', '.join(sorted(CRASH_POINTS))}")
    lo, hi = CRASH_POINTS[point]
    return Fault("failpoint", point, {"PYETCD_FAILPOINTS": f"{point}={rng.randint(lo, hi)}>1*panic"})


class Injector(threading.Thread):
    """Injects one fault on ``target`` after a seeded delay; ``log`` says what happened when."""

    def __init__(self, fault: Fault, target: Member, rng: random.Random, stop: threading.Event,
                 now: Callable[[], float], defragment: Callable[[], object],
                 crashed: Callable[[float, float], None]) -> None:
        super().__init__(name="faults", daemon=True)
        self.fault, self.target, self.rng, self.stop_ev = fault, target, rng, stop
        self.now, self.defragment, self.crashed = now, defragment, crashed
        self.log: list[str] = []
        self.fired = False
        self.error: BaseException | None = None

    def note(self, what: str) -> None:
        self.log.append(f"{self.now():.3f} {what}")

    def run(self) -> None:
        try:
            if self.stop_ev.wait(self.rng.uniform(0.8, 1.6)):
                return
            getattr(self, f"_{self.fault.kind}")()
        except BaseException as e:  # reported by the run, which then fails
            self.error = e
            self.note(f"fault injection failed: {e}")

    def _none(self) -> None:
        pass

    def _kill(self) -> None:
        self.note(f"kill -9 {self.target.name} (pid {self.target.pid})")
        down = self.now()
        self.target.kill9()
        self.fired = True
        time.sleep(self.rng.uniform(0.0, 0.3))
        self._disarm()
        self.target.restart()
        self.crashed(down, self.now())
        self.note(f"restarted {self.target.name} (pid {self.target.pid})")

    def _pause(self) -> None:
        pause = self.rng.uniform(0.5, 2.0)
        self.note(f"SIGSTOP {self.target.name} for {pause:.2f}s")
        self.target.pause()
        self.fired = True
        time.sleep(pause)
        self.target.resume()
        self.note(f"SIGCONT {self.target.name}")

    def _failpoint(self) -> None:
        if self.fault.point.startswith("defrag."):
            self.note("defragment (armed to crash)")
            self.defragment()
        while not self.stop_ev.wait(0.05):
            if not self.target.running:
                break
        self.recover()

    def _disarm(self) -> None:
        """A member restarted after a crash runs without failpoints (the selftest's bugs included)."""
        self.target.env = {k: v for k, v in self.target.env.items() if k != "PYETCD_FAILPOINTS"}

    def recover(self) -> None:
        """After a failpoint crash (or at the end, armed or not): restart without failpoints."""
        if self.fault.kind != "failpoint" or not self.fault.env:
            return
        crashed = not self.target.running
        self.fault.env = {}
        self._disarm()
        if crashed:
            self.fired = True
            self.note(f"{self.target.name} crashed at failpoint {self.fault.point}: restarting without it")
            down = self.now()
            self.target.restart()
            self.crashed(down, self.now())
            self.note(f"restarted {self.target.name} (pid {self.target.pid})")
        else:  # disarm: a graceful restart, so the final checks run on a member without it
            self.note(f"failpoint {self.fault.point} not reached before the traffic ended: restarting")
            self.target.restart()
