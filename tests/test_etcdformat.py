"""Our bucket encodings against etcd's (storage/etcdformat.py) and etcd's raft requests as ours
(storage/etcdimport.translate_request): the conversions the migration tests rely on, one by one."""

from __future__ import annotations

import json

from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.storage.backend import ALARM, MEMBERS, META
from pyetcd.storage.etcdformat import (
    etcd_revision,
    export_rows,
    import_alarm_key,
    import_meta,
    member_from_etcd,
)
from pyetcd.storage.etcdimport import translate_request


def _field(num: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (num < 2048)."""
    key = num << 3 | 2
    head = bytes([key]) if key < 0x80 else bytes([key & 0x7F | 0x80, key >> 7])
    return head + bytes([len(payload)]) + payload


def test_members_alarms_and_meta_convert_both_ways() -> None:
    rec = internal_pb2.MemberRecord(ID=0x8E9E05C52164694D, name="m1", peer_urls=["http://a:2380"],
                                    client_urls=["http://a:2379"], is_learner=True)
    ours = [(rec.ID.to_bytes(8, "big"), rec.SerializeToString()), (b"cluster_id", b"\0" * 8)]
    ((key, value),) = list(export_rows(MEMBERS, ours))  # our cluster_id row has no etcd twin
    assert key == b"8e9e05c52164694d"
    body = json.loads(value)
    assert body == {"id": rec.ID, "peerURLs": ["http://a:2380"], "name": "m1", "clientURLs": ["http://a:2379"],
                    "isLearner": True}
    assert member_from_etcd(body) == rec
    alarm = (7).to_bytes(8, "big") + rpc_pb2.NOSPACE.to_bytes(4, "big")
    ((etcd_key, _),) = list(export_rows(ALARM, [(alarm, b"")]))
    assert rpc_pb2.AlarmMember.FromString(etcd_key) == rpc_pb2.AlarmMember(memberID=7, alarm=rpc_pb2.NOSPACE)
    assert import_alarm_key(etcd_key) == alarm
    meta = dict(export_rows(META, [(b"consistent_index", b"\0" * 7 + b"\x09"), (b"currentRev", (12).to_bytes(8, "big")),
                                   (b"finishedCompactRev", (5).to_bytes(8, "big"))]))
    assert meta == {b"consistent_index": b"\0" * 7 + b"\x09", b"finishedCompactRev": etcd_revision(5),
                    b"scheduledCompactRev": etcd_revision(5)}
    back = import_meta(meta, max_key_rev=12)
    assert back[b"finishedCompactRev"] == (5).to_bytes(8, "big") and back[b"currentRev"] == (12).to_bytes(8, "big")
    assert import_meta(meta, max_key_rev=3)[b"currentRev"] == (5).to_bytes(8, "big")  # all compacted away


def test_etcd_raft_requests_become_ours() -> None:
    head = _field(100, internal_pb2.RequestHeader(ID=42).SerializeToString())  # etcd's: the same fields
    put = rpc_pb2.PutRequest(key=b"k", value=b"v", lease=3)
    ours = internal_pb2.InternalRequest.FromString(translate_request(head + _field(4, put.SerializeToString())))
    assert ours.WhichOneof("request") == "put" and ours.put == put and ours.header.ID == 42
    grant = rpc_pb2.AuthRoleGrantPermissionRequest(name="r")
    ours = internal_pb2.InternalRequest.FromString(translate_request(head + _field(1203, grant.SerializeToString())))
    assert ours.auth_role_grant_permission == grant
    v2 = b"\x08\x01\x12\x03PUT\x1a\x06/0/ver"  # a v2 etcdserverpb.Request (member attributes, version)
    assert translate_request(v2) == b"" and translate_request(head + _field(3, b"")) == b""  # a range: no-op
