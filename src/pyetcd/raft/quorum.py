"""Majority arithmetic: the committed index and the outcome of an election."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping


class VoteResult(enum.Enum):
    PENDING = 0
    LOST = 1
    WON = 2


def majority(n: int) -> int:
    return n // 2 + 1


def committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """The largest index that a majority of voters has acknowledged (0 with no voters)."""
    if not voters:
        return 0
    acked = sorted((match.get(v, 0) for v in voters), reverse=True)
    return acked[majority(len(voters)) - 1]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    if not voters:
        return VoteResult.WON
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    q = majority(len(voters))
    if granted >= q:
        return VoteResult.WON
    if len(voters) - rejected >= q:
        return VoteResult.PENDING
    return VoteResult.LOST


def has_quorum(voters: Collection[int], ok: Collection[int]) -> bool:
    return sum(1 for v in voters if v in ok) >= majority(len(voters))
