"""--strict-reconfig-check: etcd refuses a membership change that could cost the cluster its
quorum — too few started members, or peers this member has not been connected to for at least
etcd's health interval (5 s)."""

from __future__ import annotations

import time

from pyetcd import errors
from pyetcd.api import internal_pb2

from .ports import PeerSender

HEALTH_INTERVAL = 5.0  # etcd's HealthInterval
LEARNER_READY_PERCENT = 0.9  # etcd's readyPercent

Members = dict[int, internal_pb2.MemberRecord]


def _voters(members: Members) -> list[internal_pb2.MemberRecord]:
    return [m for m in members.values() if not m.is_learner]


def _started(m: internal_pb2.MemberRecord) -> bool:
    """etcd's Member.IsStarted: the member published its name through raft."""
    return bool(m.name)


def _connected_since(peers: PeerSender, self_id: int, ids: list[int], since: float) -> int:
    n = 0
    for mid in ids:
        t = peers.active_since(mid)
        if mid == self_id or (t is not None and t <= since):
            n += 1
    return n


def check_add(members: Members, self_id: int, peers: PeerSender) -> None:
    """etcd's mayAddMember for a voting member."""
    voters = _voters(members)
    nmembers, nstarted = len(voters) + 1, sum(_started(m) for m in voters)
    if not (nstarted == 1 and nmembers == 2) and nstarted < nmembers // 2 + 1:
        raise errors.ErrMemberNotEnoughStarted()
    ids = [m.ID for m in voters]
    if _connected_since(peers, self_id, ids, time.monotonic() - HEALTH_INTERVAL) != len(ids):
        raise errors.ErrUnhealthy()


def check_remove(members: Members, member_id: int, self_id: int, peers: PeerSender) -> None:
    """etcd's mayRemoveMember."""
    target = members.get(member_id)
    if target is not None and target.is_learner:
        return
    rest = [m for m in _voters(members) if member_id != m.ID]
    if sum(_started(m) for m in rest) < len(rest) // 2 + 1:
        raise errors.ErrMemberNotEnoughStarted()
    if member_id != self_id and peers.active_since(member_id) is None:
        return  # a member that is down is not part of the active quorum
    voters = _voters(members)
    active = _connected_since(peers, self_id, [m.ID for m in voters], time.monotonic() - HEALTH_INTERVAL)
    if active - 1 < 1 + (len(voters) - 1) // 2:
        raise errors.ErrUnhealthy()


def check_promote(members: Members) -> None:
    """etcd's IsReadyToPromoteMember: the learner counts as started and as a member."""
    voters = _voters(members)
    nmembers, nstarted = len(voters) + 1, sum(_started(m) for m in voters) + 1
    if nstarted < nmembers // 2 + 1:
        raise errors.ErrMemberNotEnoughStarted()
