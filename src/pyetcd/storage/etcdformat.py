"""etcd's bucket encodings beside ours: the one place that knows how the two backends differ.

Most buckets are byte-identical (key, lease, auth, authUsers, authRoles: etcd's own protobufs
and big-endian ids). The rest:

bucket    etcd (3.4/3.5)                                   ours
members   "%x" id -> member JSON                           8-byte id -> MemberRecord, plus cluster_id
alarm     AlarmMember protobuf -> ""                       (member id u64, alarm u32) -> ""
meta      finished/scheduledCompactRev: 17-byte revision   finishedCompactRev: int64; currentRev: int64
          consistent_index, term: u64                      the same
cluster   clusterVersion -> "3.5.0"                        (none)
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator

from pyetcd import ETCD_API_VERSION
from pyetcd.api import internal_pb2, rpc_pb2

from .backend import ALARM, AUTH, AUTH_ROLES, AUTH_USERS, KEY, LEASE, MEMBERS, META

Rows = Iterable[tuple[bytes, bytes]]

MEMBERS_REMOVED = b"members_removed"
CLUSTER = b"cluster"
# Every bucket etcd creates, in bbolt's (byte) order.
ETCD_BUCKETS = tuple(sorted((ALARM, AUTH, AUTH_ROLES, AUTH_USERS, CLUSTER, KEY, LEASE, MEMBERS,
                             MEMBERS_REMOVED, META)))
SAME_ENCODING = (AUTH, AUTH_ROLES, AUTH_USERS, KEY, LEASE)

CONSISTENT_INDEX = b"consistent_index"
TERM = b"term"
FINISHED_COMPACT = b"finishedCompactRev"
SCHEDULED_COMPACT = b"scheduledCompactRev"
CURRENT_REV = b"currentRev"  # ours only: etcd derives it from the key bucket
CLUSTER_ID = b"cluster_id"  # ours only, in the members bucket
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_ETCD_REV = struct.Struct(">QcQ")
_ALARM_KEY = struct.Struct(">QI")


def etcd_revision(main: int) -> bytes:
    return _ETCD_REV.pack(main, b"_", 0)


def member_to_etcd(rec: internal_pb2.MemberRecord) -> tuple[bytes, bytes]:
    body: dict[str, object] = {"id": rec.ID, "peerURLs": list(rec.peer_urls)}
    if rec.is_learner:
        body["isLearner"] = True
    if rec.name:
        body["name"] = rec.name
    if rec.client_urls:
        body["clientURLs"] = list(rec.client_urls)
    return f"{rec.ID:x}".encode(), json.dumps(body, separators=(",", ":")).encode()


def member_from_etcd(body: dict[str, object]) -> internal_pb2.MemberRecord:
    """A member from etcd's JSON (its backend bucket, a v2 store node or a conf change context)."""
    return internal_pb2.MemberRecord(
        ID=int(body["id"]), name=str(body.get("name") or ""),  # type: ignore[call-overload]
        peer_urls=list(body.get("peerURLs") or []),  # type: ignore[call-overload]
        client_urls=list(body.get("clientURLs") or []),  # type: ignore[call-overload]
        is_learner=bool(body.get("isLearner")))


# -- ours -> etcd ------------------------------------------------------------------------------
def export_rows(bucket: bytes, ours: Rows) -> Iterator[tuple[bytes, bytes]]:
    """A bucket's rows in etcd's encoding, in key order, from our rows of the same bucket."""
    if bucket in SAME_ENCODING:
        yield from ours
    elif bucket == MEMBERS:
        yield from sorted(member_to_etcd(internal_pb2.MemberRecord.FromString(v))
                          for k, v in ours if k != CLUSTER_ID)
    elif bucket == ALARM:
        yield from sorted((rpc_pb2.AlarmMember(memberID=m, alarm=a).SerializeToString(), b"")  # type: ignore[arg-type]
                          for m, a in (_ALARM_KEY.unpack(k) for k, _ in ours))
    elif bucket == META:
        yield from sorted(_export_meta(dict(ours)).items())
    elif bucket == CLUSTER:
        yield b"clusterVersion", ETCD_API_VERSION.encode()


def _export_meta(ours: dict[bytes, bytes]) -> dict[bytes, bytes]:
    out = {k: v for k, v in ours.items() if k in (CONSISTENT_INDEX, TERM)}
    if FINISHED_COMPACT in ours:
        rev = etcd_revision(_I64.unpack(ours[FINISHED_COMPACT])[0])
        out[FINISHED_COMPACT] = out[SCHEDULED_COMPACT] = rev
    return out


# -- etcd -> ours ------------------------------------------------------------------------------
def import_alarm_key(etcd_key: bytes) -> bytes:
    am = rpc_pb2.AlarmMember.FromString(etcd_key)
    return _ALARM_KEY.pack(am.memberID, am.alarm)


def import_meta(etcd: dict[bytes, bytes], max_key_rev: int) -> dict[bytes, bytes]:
    """Our meta rows from etcd's: compaction as int64, the current revision as etcd derives it."""
    out = {k: v for k, v in etcd.items() if k in (CONSISTENT_INDEX, TERM)}
    compact = _ETCD_REV.unpack(etcd[FINISHED_COMPACT])[0] if FINISHED_COMPACT in etcd else 0
    if FINISHED_COMPACT in etcd:
        out[FINISHED_COMPACT] = _I64.pack(compact)
    out[CURRENT_REV] = _I64.pack(max(1, max_key_rev, compact))
    return out


def import_members(members: Iterable[internal_pb2.MemberRecord], cluster_id: int) -> list[tuple[bytes, bytes]]:
    rows = [(_U64.pack(m.ID), m.SerializeToString()) for m in members]
    return [*rows, (CLUSTER_ID, _U64.pack(cluster_id))]


def u64(raw: bytes | None) -> int:
    return _U64.unpack(raw)[0] if raw else 0
