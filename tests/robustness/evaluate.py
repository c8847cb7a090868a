"""Every verdict on one recorded run: linearizability, serializable reads, watches, lost writes.

Order matters: the linearizability checker yields one linearization; replaying it gives the
state after every revision (for serializable reads) and the events of every revision (the
truth the watch checks compare with). Lost writes are judged without the checker, from the
final read, so they are counted even when the history is not linearizable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robustness.expiry import expirations
from robustness.history import History, complete_watcher, patch
from robustness.linearizability import Operation, check
from robustness.model import EtcdModel, replay
from robustness.settle import settle
from robustness.watchcheck import check_watches

CHECK_TIMEOUT = 120.0


@dataclass
class Verdict:
    acked_writes: int = 0
    lost: list[str] = field(default_factory=list)
    linearizable: bool | None = True
    lin_detail: str = ""
    watch: list[str] = field(default_factory=list)
    serializable: list[str] = field(default_factory=list)
    hash: list[str] = field(default_factory=list)
    leases: list[str] = field(default_factory=list)  # short leases that never expired
    check_seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """A violation found; a checker that gave up (linearizable None) is not one, nor a pass."""
        return bool(self.lost or self.linearizable is False or self.watch or self.serializable or self.hash
                    or self.leases)

    def findings(self) -> list[str]:
        out = [f"lost write: {x}" for x in self.lost]
        if self.linearizable is not True:
            out.append(f"not linearizable{'' if self.linearizable is False else ' (checker gave up)'}: "
                       f"{self.lin_detail}")
        return out + self.serializable + self.watch + self.hash + self.leases


def _acked_puts(ops: list[Operation]) -> list[tuple[int, str, str, int]]:
    """(op id, key, value, revision) of every put a client was told succeeded."""
    out = []
    for op in ops:
        if op.output is None or op.output[0] != "ok" or op.ret is None:
            continue
        if op.input[0] == "put":
            out.append((op.id, op.input[1], op.input[2], op.output[1]))
        elif op.input[0] == "txn" and op.output[2]:
            out.extend((op.id, o[1], o[2], op.output[1]) for o in op.input[2] if o[0] == "put")
    return out


def is_acked_write(op: Operation) -> bool:
    return (op.input[0] in ("put", "delete", "txn", "revoke") and op.output is not None
            and op.output[0] == "ok" and op.ret is not None and not (op.input[0] == "txn" and not op.output[2]))


def lost_writes(h: History, final: tuple[Any, ...]) -> list[str]:
    """Acknowledged puts missing from the final state, or whose revision was acknowledged again for another
    write (a crash lost it and the revision was reused), or past the revision the member ended at."""
    final_rev, kvs = final[1], {kv[0]: kv for kv in final[2]}
    deletes: dict[str, list[int]] = {}
    for w in h.watches:
        for r in w.responses:
            for typ, kv, _ in r.events:
                if typ == "DELETE":
                    deletes.setdefault(kv[0], []).append(kv[3])
    lost = []
    puts = _acked_puts(h.ops)
    claims: dict[int, list[int]] = {}  # revision -> the acknowledged ops that wrote at it, in invoke order
    for op_id, _, _, rev in puts:
        if op_id not in claims.setdefault(rev, []):
            claims[rev].append(op_id)
    for op_id, key, value, rev in puts:
        kv = kvs.get(key)
        if claims[rev][-1] != op_id:  # one revision acknowledged to two writes: the earlier was lost
            lost.append(f"{key}={value} acknowledged at revision {rev}, later acknowledged again to "
                        f"operation #{claims[rev][-1]}")
        elif rev > final_rev:
            lost.append(f"{key}={value} acknowledged at revision {rev}, the member ended at {final_rev}")
        elif kv is not None and kv[3] == rev and kv[1] != value:
            lost.append(f"{key}={value} acknowledged at revision {rev}, which now holds {kv[1]}")
        elif kv is not None and kv[3] < rev:
            lost.append(f"{key}={value} acknowledged at revision {rev}, the key is back at revision {kv[3]}")
        elif kv is None and not any(d > rev for d in deletes.get(key, ())):
            lost.append(f"{key}={value} acknowledged at revision {rev}, the key is gone with no delete seen")
    return lost


def _explain(ops: list[Operation], longest: list[int]) -> str:
    by_id = {op.id: op for op in ops}
    placed = set(longest)
    rest = sorted((op for op in ops if op.id not in placed), key=lambda o: o.call)[:4]
    tail = [by_id[i] for i in longest[-3:]]
    fmt = lambda o: f"#{o.id} c{o.client} [{o.call:.3f},{o.ret if o.ret is None else round(o.ret, 3)}] {o.input} -> {o.output}"  # noqa: E731
    return (f"{len(longest)} of {len(ops)} operations placed; last placed: "
            + "; ".join(map(fmt, tail)) + " | none of these fits next: " + "; ".join(map(fmt, rest)))


def complete_watch_events(h: History) -> dict[int, tuple[tuple[Any, ...], ...]]:
    """revision -> events, from the watchers of every key from revision 1 (the run's first watcher)."""
    out: dict[int, list[tuple[Any, ...]]] = {}
    w = complete_watcher(h)
    for r in w.responses if w is not None else ():
        for typ, kv, prev in r.events:
            out.setdefault(kv[3], []).append((typ, tuple(kv), tuple(prev) if prev else None))
    return {rev: tuple(evs) for rev, evs in out.items()}


def checked_history(h: History, trust_watcher: bool = True) -> tuple[list[Operation], list[str]]:
    """The operations the checker places (``patch``, unknown writes bounded by ``settle``, and the
    server's lease expiries) and what
    rules any linearization out before the search (an expiry whose window closes before it opens)."""
    ops = settle(h, patch(h, trust_watcher), trust_watcher)
    expired = expirations(ops, h.members, len(h.ops))
    return ops + expired.ops, expired.problems


def evaluate(h: History, final: tuple[Any, ...], timeout: float = CHECK_TIMEOUT) -> Verdict:
    """Judge a finished run; ``final`` is the answer of the final linearizable read of every key."""
    v = Verdict(acked_writes=sum(1 for op in h.ops if is_acked_write(op)))
    v.lost = lost_writes(h, final)
    ops, impossible = checked_history(h)
    if impossible:
        v.linearizable, v.lin_detail = False, "; ".join(impossible)
        return v
    linear = [op for op in ops if not (op.input[0] == "get" and op.input[3])]
    res = check(EtcdModel(complete_watch_events(h)), linear, timeout=timeout)
    if res.ok is False:  # the history, or the complete watcher's account of it (which patch trusted too)?
        ops, _ = checked_history(h, trust_watcher=False)
        linear = [op for op in ops if not (op.input[0] == "get" and op.input[3])]
        alone = check(EtcdModel(), linear, timeout=timeout)
        if alone.ok is True:
            v.watch.append("the complete watcher's events fit no linearization of the history: "
                           + _explain(linear, res.longest))
            res.ok, res.order = True, alone.order
        res.seconds += alone.seconds
    v.check_seconds = res.seconds
    v.linearizable = res.ok
    if res.ok is not True:
        v.lin_detail = _explain(linear, res.longest)
    else:
        by_id = {op.id: op for op in linear}
        states, truth = replay([by_id[i] for i in res.order[0]])
        final_rev = final[1]
        for op in ops:
            if op.input[0] == "get" and op.input[3] and op.output is not None:
                rev = op.output[1]
                s = states.get(rev)
                if s is None or s.range(op.input[1], op.input[2]) != op.output[2]:
                    v.serializable.append(f"serializable read #{op.id} {op.input} -> {op.output} matches no "
                                          f"state of the history (state at {rev}: {s})")
        compactions = [(op.input[1], op.call) for op in h.ops
                       if op.input[0] == "compact" and (op.output is None or op.output[0] == "ok")]
        v.watch += check_watches(h.watches, truth, final_rev, compactions)
    return v
