"""Unknown writes bounded by what was observed after them, so the search cannot try them everywhere.

On a cluster nothing bounds a timed-out write by time (a proposal in flight may commit through any
member later), and one the checker may place at every later point multiplies the search: long ``drop``
runs gave up (seed 3010: 13 unknown compactions, 3 revokes, 2 deletes). Each rule below only removes
placements no correct linearization uses, or an operation whose effect no answer can tell apart from
none; so a history is linearizable after ``settle`` exactly when it was before.

- **Compaction** at X (unknown): its effect (the compacted revision becomes X) shows only in the answer
  of another compaction at Z <= X placed after it (refused as compacted; accepted is then impossible).
  With no compaction at Z <= X refused as compacted and unfinished when X was invoked, dropping it
  changes no answer. Otherwise it happened, if at all, before any compaction at Y >= X was accepted
  (after that it is refused itself): that return bounds it.
- **Revoke** of a lease (unknown): not before the call of any answer that found the lease alive, and,
  if at all, before the first answer that found it gone (a lease never comes back); the run asks each
  such lease's time-to-live at the end (``ttl`` operations), so there is such an answer when it is gone.
- **Delete** (unknown), with a complete watcher that saw every revision: an effective delete made a
  revision of its own, only DELETE events of keys in its range, received after its call and written by
  no operation with a known answer. With none it deleted nothing (dropped); else it happened, if at all,
  before the last such revision arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from robustness.history import History, complete_watcher
from robustness.linearizability import Operation


def _lease_puts(op: Operation) -> list[int]:
    """Leases the puts of ``op`` attach keys to (a txn: the branch its answer says ran)."""
    inp = op.input
    if inp[0] == "put":
        return [inp[3]] if inp[3] else []
    if inp[0] == "txn":
        branch = inp[2] if op.output is None or op.output[0] != "ok" or op.output[2] else inp[3]
        return [o[3] for o in branch if o[0] == "put" and o[3]]
    return []


def lease_evidence(op: Operation) -> tuple[list[int], list[int]]:
    """(leases alive at some point of ``op``, leases gone at some point of it), from its answer: an
    accepted revoke found its lease alive and left it gone."""
    out, kind = op.output, op.input[0]
    if out is None or op.ret is None:
        return [], []
    if kind in ("keepalive", "ttl"):
        return ([op.input[1]], []) if out[1] else ([], [op.input[1]])
    if kind == "revoke":
        return ([op.input[1]], [op.input[1]]) if out[0] == "ok" else ([], [op.input[1]])
    leases = _lease_puts(op)
    if out == ("err", "lease_not_found"):
        return [], leases
    return (leases, []) if out[0] == "ok" else ([], [])


def lease_lives(ops: Sequence[Operation]) -> tuple[dict[int, list[Operation]], dict[int, Operation]]:
    """lease -> the operations that found it alive; lease -> the first (by return) that found it gone
    once its grant had been answered (before that, "gone" may mean "not yet": a lease whose grant's
    outcome is unknown has no such answer)."""
    granted = {op.input[1]: op.ret for op in ops if op.input[0] == "grant" and op.output is not None
               and op.output[0] == "ok" and op.ret is not None}
    alive: dict[int, list[Operation]] = {}
    gone: dict[int, Operation] = {}
    for op in ops:
        found_alive, found_gone = lease_evidence(op)
        for lease in found_alive:
            alive.setdefault(lease, []).append(op)
        for lease in found_gone:
            first = gone.get(lease)
            if lease in granted and op.call >= granted[lease] and (first is None or op.ret < first.ret):  # type: ignore[operator]
                gone[lease] = op
    return alive, gone


def _compaction(op: Operation, ops: Sequence[Operation]) -> Operation | None:
    at = op.input[1]
    compactions = [o for o in ops if o.input[0] == "compact" and o is not op and o.output is not None]
    if not any(o.output == ("err", "compacted") and o.input[1] <= at and o.ret > op.call  # type: ignore[operator]
               for o in compactions):
        return None
    later = [o.ret for o in compactions if o.output[0] == "ok" and o.input[1] >= at and o.ret is not None]
    return _bounded(op, op.call, min(later, default=None))


def _revoke(op: Operation, alive: dict[int, list[Operation]], gone: dict[int, Operation]) -> Operation | None:
    lease = op.input[1]
    call = max([op.call, *(o.call for o in alive.get(lease, []))])
    end = gone.get(lease)
    if end is not None and op.call <= end.ret < call:  # type: ignore[operator]
        return op  # found alive after it was found gone: the checker names that, nothing to settle here
    return _bounded(op, call, None if end is None else end.ret)


def _bounded(op: Operation, call: float, ret: float | None) -> Operation | None:
    """``op`` placed within [call, ret]; None when that is empty: by then it could have no effect
    (its lease was gone, or a compaction at or past its revision was accepted, before it was sent)."""
    if ret is None or (op.ret is not None and op.ret <= ret):
        ret = op.ret
    if ret is not None and ret < call:
        return None
    return op if (call, ret) == (op.call, op.ret) else replace(op, call=call, ret=ret)


class _Revisions:
    """The revisions a complete watcher saw that no operation with a known answer wrote."""

    def __init__(self, h: History, ops: Sequence[Operation]) -> None:
        self.usable = False
        w = complete_watcher(h)
        top = max((op.output[1] for op in h.ops if op.output is not None and op.output[0] == "ok"), default=0)
        if w is None or w.compacted() or w.last_seen() < top:
            return
        self.usable = True
        written = {op.output[1] for op in ops if _wrote(op)}
        self.free: dict[int, tuple[float, list[tuple[str, Any]]]] = {}
        for r in w.responses:
            for typ, kv, _ in r.events:
                if kv[3] not in written:
                    self.free.setdefault(kv[3], (r.t, []))[1].append((typ, kv[0]))

    def delete_bound(self, op: Operation) -> float | None:
        """When an unknown delete took effect at the latest; None: it deleted nothing."""
        key, end = op.input[1], op.input[2]
        hit = (lambda k: k == key) if end is None else (lambda k: key <= k and (end == "\0" or k < end))
        times = [t for t, events in self.free.values()
                 if t >= op.call and all(typ == "DELETE" and hit(k) for typ, k in events)
                 and (end is not None or len(events) == 1)]
        return max(times, default=None)


def _wrote(op: Operation) -> bool:
    """The answer proves ``op`` wrote the revision it carries."""
    out = op.output
    if out is None or out[0] != "ok" or op.input[0] not in ("put", "delete", "txn"):
        return False
    if op.input[0] == "delete":
        return bool(out[2])
    if op.input[0] == "txn":
        branch = op.input[2] if out[2] else op.input[3]
        return any(o[0] == "put" for o in branch) or any(o[0] == "delete" and r[0] for o, r in zip(branch, out[3],
                                                                                                   strict=False))
    return True


def settle(h: History, ops: Sequence[Operation], trust_watcher: bool = True) -> list[Operation]:
    """``ops`` (``history.patch``'s) with unknown compactions, revokes and deletes bounded or dropped."""
    alive, gone = lease_lives(ops)
    revisions = _Revisions(h, ops) if trust_watcher else None
    out: list[Operation] = []
    for op in ops:
        kind = op.input[0]
        settled: Operation | None = op
        if op.output is None and kind == "compact":
            settled = _compaction(op, ops)
        elif op.output is None and kind == "revoke":
            settled = _revoke(op, alive, gone)
        elif op.output is None and kind == "delete" and revisions is not None and revisions.usable:
            bound = revisions.delete_bound(op)
            settled = None if bound is None else _bounded(op, op.call, bound)
        if settled is not None:
            out.append(settled)
    return out
