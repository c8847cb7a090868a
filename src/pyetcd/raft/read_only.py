"""ReadIndex bookkeeping: a read at index i is safe once a quorum has acknowledged a
heartbeat sent after the request, proving we were still leader when it arrived."""

from __future__ import annotations

from dataclasses import dataclass, field

from .types import Message


@dataclass
class ReadIndexStatus:
    req: Message
    index: int
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, m: Message) -> None:
        ctx = m.context
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(m, index)
        self.queue.append(ctx)

    def recv_ack(self, id_: int, ctx: bytes) -> set[int] | None:
        rs = self.pending.get(ctx)
        if rs is None:
            return None
        rs.acks.add(id_)
        return rs.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Release every request up to and including `ctx` (a later ack covers earlier ones)."""
        if ctx not in self.pending:
            return []
        n = self.queue.index(ctx) + 1
        done = [self.pending.pop(c) for c in self.queue[:n]]
        del self.queue[:n]
        return done

    def last_pending_request_ctx(self) -> bytes:
        return self.queue[-1] if self.queue else b""
