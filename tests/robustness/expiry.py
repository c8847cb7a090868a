"""Lease expiry as operations: the server's own revokes, which no client issued, placed by the checker.

A short lease (granted with a TTL, ``("grant", id, ttl)``) ends when the server revokes it by itself,
deleting all its keys in one revision of its own. The checker needs that revision as an operation,
so each short lease gets one ``("expire", id)`` (``model.apply``), with a window that keeps it sound
and the search narrow:

- not before the call of any operation that found the lease alive (a keep-alive or time-to-live
  answered alive, a put with the lease that succeeded): it cannot be placed before them anyway;
- not before its TTL ran out: the grant's call + TTL (a leader's clock starts at the grant or later,
  and a new leader only extends it); on one member also the last keep-alive answered alive + TTL
  (one lease clock, restarted by that keep-alive). Not on clusters: a deposed leader's stale answer
  restarts no clock that counts;
- not after the first answer that found it gone (keep-alive TTL 0, time-to-live -1, a put refused
  with "lease not found"), and then it happened: nobody else revokes these leases. With no such
  answer it is an unknown outcome, as a client's timed-out revoke is.

A window that closes before it opens is no linearization at all, named as such: a lease found alive
after it was found gone, or found gone before it could have expired. A lease a client may also have
revoked (or whose grant's outcome is unknown) gets an unknown outcome: it may have expired or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from robustness.linearizability import Operation
from robustness.settle import lease_lives

SERVER = -3  # the client id of operations the server issued itself
SLACK = 0.05  # seconds: the member and the recorder read the same monotonic clock, at slightly different moments


@dataclass
class Expirations:
    ops: list[Operation] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _fmt(op: Operation) -> str:
    return f"#{op.id} c{op.client} {op.input} -> {op.output} [{op.call:.3f}, {op.ret}]"


def expirations(ops: Sequence[Operation], members: int, next_id: int) -> Expirations:
    """One ``expire`` operation per short lease of ``ops`` (the patched history), ids from ``next_id``."""
    grants = {op.input[1]: op for op in ops if op.input[0] == "grant" and len(op.input) > 2}
    alive, gone = lease_lives(ops)
    revoked = {op.input[1] for op in ops if op.input[0] == "revoke"}
    out = Expirations()
    for lease, grant in sorted(grants.items(), key=lambda x: x[1].call):
        ttl = grant.input[2]
        seen = sorted(alive.get(lease, []), key=lambda o: o.call)
        renewals = [o for o in seen if o.input[0] == "keepalive"] if members == 1 else []
        clock = max([grant, *renewals], key=lambda o: o.call)
        not_before = max(clock.call + ttl - SLACK, seen[-1].call if seen else grant.call)
        end = gone.get(lease)
        certain = grant.output is not None and grant.output[0] == "ok" and lease not in revoked
        if end is not None and seen and seen[-1].call > end.ret:  # type: ignore[operator]
            out.problems.append(f"lease {lease:x} found alive by {_fmt(seen[-1])} after {_fmt(end)} found it gone")
            continue
        if end is not None and not_before > end.ret:  # type: ignore[operator]
            if certain:
                out.problems.append(f"lease {lease:x} (TTL {ttl}s) found gone by {_fmt(end)}, before it could "
                                    f"expire: its clock ran from {_fmt(clock)}")
            continue  # not certain: a client's revoke ended it, no expiry did
        ret = None if end is None else end.ret
        output: Any = ("ok",) if certain and end is not None else None
        out.ops.append(Operation(next_id + len(out.ops), SERVER, ("expire", lease), output, not_before, ret))
    return out
