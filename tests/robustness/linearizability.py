"""A linearizability checker: Wing & Gong's search with Lowe's memoization, as porcupine does it.

No Python package provides one, so this is porcupine's ``checkSingle`` written again: the
history's call and return events sit in one time-ordered linked list; the search linearizes the
earliest call whose effect the model accepts, lifts it (and its return) out of the list, and
backtracks when it meets a return whose call it could not place. Every (set of linearized ops,
model state) pair is searched once (the cache), which keeps honest histories near-linear.

An operation whose outcome is unknown (an error or a timeout: it may or may not have taken
effect) has output None, which the model accepts for whatever the operation would have done,
and returns at +infinity (placed last it is as if it never happened) unless the caller knows a
time by which it either took effect or never will (then placed before that, or not at all:
an unknown operation with a return time may also be dropped, see ``check_single``).

Partitioning is the model's business (``Model.partition``): sound only when operations on
different parts never constrain each other. A register per key can be split by key; etcd's
model cannot (one revision counter orders every key), so it returns the history whole.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Operation:
    """One client request: when it was invoked and returned (None: unknown outcome), what and what came back."""

    id: int
    client: int
    input: Any
    output: Any  # None: unknown outcome (error/timeout), it may or may not have taken effect
    call: float
    ret: float | None  # None: +infinity; an unknown outcome may still have a known latest time

    @property
    def unknown(self) -> bool:
        return self.output is None


class Model(Protocol):
    """What the checker needs to know about the object under test."""

    def init(self) -> Hashable: ...

    def step(self, state: Any, input: Any, output: Any) -> Any:
        """The state after ``input`` answered ``output`` (None: unknown), or None if impossible."""

    def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]: ...


@dataclass
class CheckResult:
    """ok True: linearizable (order: one witness per partition, the ids of the ops that took effect,
    in order); False: not; None: gave up."""

    ok: bool | None
    order: list[list[int]] = field(default_factory=list)
    longest: list[int] = field(default_factory=list)  # the longest prefix placed, to explain a failure
    steps: int = 0
    seconds: float = 0.0


class _Entry:
    __slots__ = ("op", "is_call", "match", "prev", "next", "time")

    def __init__(self, op: Operation | None, is_call: bool, t: float) -> None:
        self.op = op
        self.is_call = is_call
        self.time = t
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _build(ops: Sequence[Operation]) -> _Entry:
    """A sentinel-headed doubly linked list of call/return entries in time order (calls first on ties)."""
    entries: list[tuple[float, int, int, _Entry]] = []
    for i, op in enumerate(ops):
        call = _Entry(op, True, op.call)
        ret = _Entry(op, False, math.inf if op.ret is None else op.ret)
        call.match = ret
        entries.append((call.time, 0, i, call))
        entries.append((ret.time, 1, i, ret))
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    head = _Entry(None, False, -math.inf)
    prev = head
    for *_, e in entries:
        prev.next, e.prev = e, prev
        prev = e
    return head


def _lift(e: _Entry) -> None:
    e.prev.next = e.next  # type: ignore[union-attr]
    if e.next is not None:
        e.next.prev = e.prev
    m = e.match
    m.prev.next = m.next  # type: ignore[union-attr]
    if m.next is not None:  # type: ignore[union-attr]
        m.next.prev = m.prev  # type: ignore[union-attr]


def _unlift(e: _Entry) -> None:
    m = e.match
    m.prev.next = m  # type: ignore[union-attr]
    if m.next is not None:  # type: ignore[union-attr]
        m.next.prev = m  # type: ignore[union-attr]
    e.prev.next = e  # type: ignore[union-attr]
    if e.next is not None:
        e.next.prev = e


def _candidates(model: Model, state: Any, op: Operation) -> list[tuple[bool, Any]]:
    """(took effect?, state) ``op`` may lead to: its effect; for an unknown outcome with a deadline, also none."""
    new = model.step(state, op.input, op.output)
    out = [(True, new)] if new is not None else []
    if op.output is None and op.ret is not None:
        out.append((False, state))
    return out


def check_single(model: Model, ops: Sequence[Operation], deadline: float = math.inf
                 ) -> tuple[bool | None, list[int], list[int], int]:
    """(linearizable?, witness order, longest prefix placed, steps) for one partition."""
    index = {id(op): n for n, op in enumerate(ops)}
    head = _build(ops)
    state = model.init()
    linearized = 0
    cache: set[tuple[int, Any]] = {(0, state)}
    calls: list[tuple[_Entry, Any, bool]] = []
    longest: list[int] = []
    steps = 0
    entry = head.next
    while head.next is not None:
        steps += 1
        if steps & 0x3FFF == 0 and time.monotonic() > deadline:
            return None, [], longest, steps
        assert entry is not None
        if entry.is_call:
            op = entry.op
            assert op is not None
            bit = linearized | (1 << index[id(op)])
            for effect, new_state in _candidates(model, state, op):
                key = (bit, new_state)
                if key not in cache:
                    cache.add(key)
                    calls.append((entry, state, effect))
                    state, linearized = new_state, bit
                    _lift(entry)
                    entry = head.next
                    break
            else:
                entry = entry.next
        else:  # a return whose call could not be placed: undo the last placement
            if len(calls) > len(longest):
                longest = [c.op.id for c, _, _ in calls]  # type: ignore[union-attr]
            if not calls:
                return False, [], longest, steps
            top, state, _ = calls.pop()
            linearized &= ~(1 << index[id(top.op)])
            _unlift(top)
            entry = top  # again: an unknown operation may still be placed here as having had no effect
    # the witness: op ids in order, an unknown operation placed as having had no effect left out
    return True, [c.op.id for c, _, effect in calls if effect], longest, steps  # type: ignore[union-attr]


def check(model: Model, ops: Sequence[Operation], timeout: float = math.inf) -> CheckResult:
    """Check every partition of ``ops``; stops at the first that is not linearizable."""
    start = time.monotonic()
    deadline = start + timeout
    res = CheckResult(ok=True)
    for part in model.partition(ops):
        ok, order, longest, steps = check_single(model, part, deadline)
        res.steps += steps
        if ok is not True:
            res.ok, res.longest = ok, longest
            break
        res.order.append(order)
    res.seconds = time.monotonic() - start
    return res
