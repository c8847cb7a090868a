"""Seeded faults injected while traffic runs, on real member processes and their peer proxies.

Any size: kill -9 then restart, SIGSTOP/SIGCONT, and (pyetcd only) a crash at a named failpoint
inside the server (``pyetcd.failpoints``) of one member, armed by restarting that member with
``PYETCD_FAILPOINTS`` before traffic starts; after the crash it restarts without it. Clusters add
leader kills and pauses, a partition (both ways) of one member or of the leader, a one-way blackhole
of what a member (or the leader) receives, delay and drop on every proxy, and member replacement
(remove, then add with an empty data dir). Each proxy fault lasts 1.5-3.5 s, then every proxy heals.

``lease-pause`` (any size, either server; asked for by name, outside the random draw, so the seeds of
earlier runs keep their faults): the run's traffic then holds short leases (TTL 2 or 3 s, seeded) kept
alive by ``leases.LeaseKeeper``, and the member (the leader of a cluster) is paused for longer than
the TTL: the leases expire on resume, or a new leader takes them over and extends them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from robustness.cluster import Cluster
from support.member import Member

# failpoint -> (min, max) hits to let pass before the crash: a crash lands mid-traffic, not at start
CRASH_POINTS: dict[str, tuple[int, int]] = {
    "turn.before_persist": (100, 500),
    "turn.between_commits": (100, 500),  # raft log durable, the store not yet: replayed at restart
    "turn.after_persist": (100, 500),
    # answered, the store's transaction not committed (held open by a lone client's turns, or a
    # busy turn's): replayed at restart
    "turn.before_store_commit": (5, 60),
    "apply.before": (150, 700),
    "compact.before": (3, 15),
    "compact.after": (3, 15),
    "defrag.after_copy": (0, 0),
    "defrag.before_swap": (0, 0),
    "defrag.after_swap": (0, 0),
}
PROCESS_FAULTS = ("kill", "pause")
CLUSTER_FAULTS = ("kill-leader", "pause-leader", "partition", "partition-leader", "blackhole",
                  "blackhole-leader", "delay", "drop", "replace")
FAULT_KINDS = {"etcd": PROCESS_FAULTS, "pyetcd": (*PROCESS_FAULTS, "failpoint")}
LEASE_FAULT = "lease-pause"  # not in the random draw (see above)
SHORT_LEASE_TTLS = (2, 3)  # seconds; pyetcd and etcd grant at least 2 s with a 1 s election timeout


def fault_kinds(member_kind: str, size: int) -> tuple[str, ...]:
    """The faults a run of ``size`` members of ``member_kind`` can get."""
    return FAULT_KINDS[member_kind] + (CLUSTER_FAULTS if size > 1 else ())


@dataclass
class Fault:
    """One planned fault: its kind, the failpoint (if any) and the environment it needs at start."""

    kind: str
    point: str = ""
    env: dict[str, str] = field(default_factory=dict)
    member: int = 0  # which member a failpoint is armed on
    lease_ttl: int = 0  # the TTL of the run's short leases (none without)

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.point}" if self.point else self.kind


def plan(kind: str, member_kind: str, rng: random.Random, size: int = 1) -> Fault:
    """A fault of ``kind`` ("random" picks one the member kind and cluster size support; "none" is none)."""
    if kind == "random":
        kind = rng.choice(fault_kinds(member_kind, size))
    if kind == "none":
        return Fault("none")
    if kind == LEASE_FAULT:
        return Fault(kind, lease_ttl=rng.choice(SHORT_LEASE_TTLS))
    if kind in PROCESS_FAULTS or kind in CLUSTER_FAULTS:
        if kind not in fault_kinds(member_kind, size):
            raise ValueError(f"fault {kind} needs several members (MEMBERS=3)")
        return Fault(kind)
    point = kind.partition(":")[2] if ":" in kind else rng.choice(sorted(CRASH_POINTS))
    if member_kind != "pyetcd":
        raise ValueError(f"failpoints exist only inside pyetcd, not {member_kind}")
    if point not in CRASH_POINTS:
        raise ValueError(f"unknown failpoint {point!r}; one of {', '.join(sorted(CRASH_POINTS))}")
    lo, hi = CRASH_POINTS[point]
    return Fault("failpoint", point, {"PYETCD_FAILPOINTS": f"{point}={rng.randint(lo, hi)}>1*panic"},
                 rng.randrange(size))


class Injector(threading.Thread):
    """Injects one fault on the cluster after a seeded delay; ``log`` says what happened when.

    ``crashed(down, up)`` is told when a member died and served again: only a single-member run
    passes one that bounds unknown outcomes (``History.crashed``); with several members a write in
    flight at the crash may commit through the others at any later time."""

    def __init__(self, fault: Fault, cluster: Cluster, rng: random.Random, stop: threading.Event,
                 now: Callable[[], float], defragment: Callable[[Member], object],
                 crashed: Callable[[float, float], None]) -> None:
        super().__init__(name="faults", daemon=True)
        self.fault, self.cluster, self.rng, self.stop_ev = fault, cluster, rng, stop
        self.target = cluster.members[fault.member]
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
            if self.fault.kind == LEASE_FAULT:
                self.target = self.cluster.leader()  # the member whose clock expires leases
                self._pause(self.fault.lease_ttl + self.rng.uniform(*((0.5, 2.0) if self.cluster.size == 1
                                                                     else (1.0, 4.0))))
                return
            kind, _, who = self.fault.kind.partition("-")
            if kind in ("kill", "pause", "partition", "blackhole", "replace"):
                self.target = self.cluster.leader() if who == "leader" else self.rng.choice(self.cluster.members)
            getattr(self, f"_{kind}")()
        except BaseException as e:  # reported by the run, which then fails
            self.error = e
            self.note(f"fault injection failed: {type(e).__name__}: {e}")

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

    def _pause(self, pause: float | None = None) -> None:
        pause = self.rng.uniform(0.5, 2.0) if pause is None else pause
        self.note(f"SIGSTOP {self.target.name} for {pause:.2f}s")
        self.target.pause()
        self.fired = True
        time.sleep(pause)
        self.target.resume()
        self.note(f"SIGCONT {self.target.name}")

    def _proxy_fault(self, what: str, apply: Callable[[], None], proxies: str) -> None:
        span = self.rng.uniform(1.5, 3.5)  # past an election timeout (1 s) mostly
        self.note(f"{what} on the peer proxy of {proxies} for {span:.2f}s")
        apply()
        self.fired = True
        time.sleep(span)
        self.note(f"before healing: {self.cluster.describe()}")
        self.cluster.heal()
        self.note("peer proxies healed")

    def _partition(self) -> None:
        self._proxy_fault(f"partition {self.target.name} from the others (both ways)",
                          lambda: self.cluster.partition(self.target), "every member")

    def _blackhole(self) -> None:
        self._proxy_fault("blackhole (inbound peer traffic, connections kept open)",
                          self.cluster.proxy(self.target).blackhole, self.target.name)

    def _delay(self) -> None:
        delay, jitter = self.rng.uniform(0.02, 0.3), self.rng.uniform(0.0, 0.1)

        def apply() -> None:
            for p in self.cluster.proxies.values():
                p.delay(delay, jitter)
        self._proxy_fault(f"delay {delay * 1000:.0f}±{jitter * 1000:.0f} ms", apply, "every member")

    def _drop(self) -> None:
        probability = self.rng.uniform(0.02, 0.2)

        def apply() -> None:
            for p in self.cluster.proxies.values():
                p.drop(probability)
        self._proxy_fault(f"drop {probability:.0%} of chunks (a reset connection)", apply, "every member")

    def _replace(self) -> None:
        self.note(f"replace {self.target.name}: member remove, then member add with an empty data dir")
        self.fired = True
        self.cluster.replace(self.target, self.note)
        self.note(f"{self.target.name} serves again")

    def _failpoint(self) -> None:
        if self.fault.point.startswith("defrag."):
            self.note(f"defragment {self.target.name} (armed to crash)")
            self.defragment(self.target)
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
