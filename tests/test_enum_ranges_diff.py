"""Enum fields set outside their enum (proto3 enums are open), answered as real etcd answers them.

Differential: the same requests to real etcd and to pyetcd, answers compared. The one enum
pyetcd answers differently on purpose is RangeRequest's sort order/target: etcd 3.5 refuses them
("invalid sort option"), which pyetcd does; etcd 3.4 has no check (tests/test_hostile_requests.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from conftest import MemberFactory
from pyetcd.api import auth_pb2, rpc_pb2, rpc_pb2_grpc
from support import Member, grpc_channel

Outcome = tuple[str, Any]


def _outcome(fn: Callable[[], Any]) -> Outcome:
    try:
        return "OK", fn()
    except grpc.RpcError as e:
        return e.code().name, e.details()


def _scenario(m: Member) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}
    with grpc_channel(m) as ch:
        kv, maint = rpc_pb2_grpc.KVStub(ch), rpc_pb2_grpc.MaintenanceStub(ch)
        auth = rpc_pb2_grpc.AuthStub(ch)
        kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), timeout=10)

        def txn(**compare: Any) -> bool:
            c = rpc_pb2.Compare(key=b"k", **compare)
            return kv.Txn(rpc_pb2.TxnRequest(compare=[c]), timeout=10).succeeded

        out["compare target 42"] = _outcome(lambda: txn(target=42, result=rpc_pb2.Compare.EQUAL))
        out["compare target 42, NOT_EQUAL"] = _outcome(lambda: txn(target=42, result=rpc_pb2.Compare.NOT_EQUAL))
        out["compare result 42"] = _outcome(lambda: txn(target=rpc_pb2.Compare.VALUE, result=42, value=b"x"))
        out["compare on a missing key, target 42"] = _outcome(
            lambda: kv.Txn(rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(key=b"nokey", target=42)]),
                           timeout=10).succeeded)
        me = maint.Status(rpc_pb2.StatusRequest(), timeout=10).header.member_id

        def alarm(action: int, kind: int) -> list[int]:
            req = rpc_pb2.AlarmRequest(action=action, memberID=me, alarm=kind)
            return [a.alarm for a in maint.Alarm(req, timeout=10).alarms]

        for kind in (9, -1):
            out[f"alarm deactivate type {kind} (not raised)"] = _outcome(
                lambda k=kind: alarm(rpc_pb2.AlarmRequest.DEACTIVATE, k))  # type: ignore[misc]
            out[f"alarm activate type {kind}"] = _outcome(
                lambda k=kind: alarm(rpc_pb2.AlarmRequest.ACTIVATE, k))  # type: ignore[misc]
            out[f"status errors with type {kind}"] = _outcome(
                lambda: [e.split(" alarm:")[1] for e in maint.Status(rpc_pb2.StatusRequest(), timeout=10).errors])
            out[f"alarm get type {kind}"] = _outcome(lambda k=kind: alarm(rpc_pb2.AlarmRequest.GET, k))  # type: ignore[misc]
            out[f"alarm deactivate type {kind}"] = _outcome(
                lambda k=kind: alarm(rpc_pb2.AlarmRequest.DEACTIVATE, k))  # type: ignore[misc]
        out["put with those alarms gone"] = _outcome(
            lambda: kv.Put(rpc_pb2.PutRequest(key=b"k2", value=b"v"), timeout=10).header.revision > 0)
        auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="r"), timeout=10)
        perm = auth_pb2.Permission(permType=9, key=b"a")
        out["permission type 9"] = _outcome(lambda: auth.RoleGrantPermission(
            rpc_pb2.AuthRoleGrantPermissionRequest(name="r", perm=perm), timeout=10) is not None)
        out["role after"] = _outcome(
            lambda: [(p.permType, p.key) for p in auth.RoleGet(rpc_pb2.AuthRoleGetRequest(role="r"),
                                                               timeout=10).perm])
        out["watch filter 9"] = _outcome(lambda: _watch_with_filter(ch, kv, 9))
    return out


def _watch_with_filter(ch: grpc.Channel, kv: rpc_pb2_grpc.KVStub, flt: int) -> list[tuple[bool, bool, int]]:
    """The created reply and the next event reply of a watch on "k" with filter ``flt``."""
    create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"k", filters=[flt]))
    call = rpc_pb2_grpc.WatchStub(ch).Watch(iter([create]), timeout=10)
    first = next(call)
    kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"w"), timeout=10)
    second = next(call)
    call.cancel()
    return [(r.created, r.canceled, len(r.events)) for r in (first, second)]


def test_unknown_alarm_action_is_refused(pyetcd_member: Member) -> None:
    """pyetcd only: etcd 3.4 leaves the response nil and exits marshalling it (seen: a SIGSEGV in
    AlarmResponse.Size)."""
    with grpc_channel(pyetcd_member) as ch:
        maint = rpc_pb2_grpc.MaintenanceStub(ch)
        for action in (3, 9, -1):
            try:
                maint.Alarm(rpc_pb2.AlarmRequest(action=action), timeout=10)
                raise AssertionError(f"alarm action {action} was accepted")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e


def test_out_of_range_enums_answered_as_etcd(member_factory: MemberFactory) -> None:
    etcd = _scenario(member_factory("etcd"))
    pyetcd = _scenario(member_factory("pyetcd"))
    assert pyetcd == etcd
