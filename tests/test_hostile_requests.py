"""Issue 9, item by item: requests a hostile client sends, answered as real etcd answers them.

Each runs on real etcd (proving the test) and on pyetcd (``any_member``), except where etcd 3.4
has no answer to compare with (it panics on an out-of-range sort target), said where it applies.
"""

from __future__ import annotations

import grpc
import pytest

from pyetcd import wire
from pyetcd.api import auth_pb2, rpc_pb2, rpc_pb2_grpc
from support import Member, grpc_channel
from support.protofuzz import nested_txn

UNMARSHAL = "grpc: error unmarshalling request:"
STREAM_UNMARSHAL = "grpc: failed to unmarshal the received message"


def _raw_txn(m: Member, data: bytes) -> bytes:
    with grpc_channel(m) as ch:
        reply: bytes = ch.unary_unary("/etcdserverpb.KV/Txn")(data, timeout=10)
        return reply


def _log_size(m: Member) -> int:
    return m.log_path.stat().st_size


@pytest.mark.parametrize("depth", [49, 50, 51, 100, 128])
def test_deep_txn_is_applied(any_member: Member, depth: int) -> None:
    """A Txn nested up to etcd's limit (128 levels with the default --max-txn-ops) commits;
    the 50-level one used to make pyetcd's apply thread fail to decode its own entry and exit."""
    leaf = rpc_pb2.PutRequest(key=b"deep", value=str(depth).encode())
    reply = wire.parse(rpc_pb2.TxnResponse, _raw_txn(any_member, nested_txn(depth, leaf)))
    assert reply.succeeded
    assert any_member.running
    with grpc_channel(any_member) as ch:
        kvs = rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"deep"), timeout=10).kvs
    assert [kv.value for kv in kvs] == [str(depth).encode()]


def test_deep_txn_survives_restart(any_member: Member) -> None:
    _raw_txn(any_member, nested_txn(100))
    any_member.restart()
    with grpc_channel(any_member) as ch:
        assert rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"fz/deep"), timeout=10).count == 1


def test_txn_deeper_than_max_txn_ops_is_refused(any_member: Member) -> None:
    with pytest.raises(grpc.RpcError) as e:
        _raw_txn(any_member, nested_txn(129))
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                   "etcdserver: too many operations in txn request")
    assert any_member.running


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x08"])
def test_unparseable_request_is_internal_and_not_logged(any_member: Member, garbage: bytes) -> None:
    before = _log_size(any_member)
    with grpc_channel(any_member) as ch:
        for path in ("/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put", "/etcdserverpb.Maintenance/Status"):
            for _ in range(20):
                with pytest.raises(grpc.RpcError) as e:
                    ch.unary_unary(path)(garbage, timeout=5)
                assert e.value.code() == grpc.StatusCode.INTERNAL, (path, e.value.details())
                assert (e.value.details() or "").startswith(UNMARSHAL), e.value.details()
        rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=5)
    assert _log_size(any_member) == before, "a request that does not parse must not be logged"


def test_garbage_frame_ends_a_watch_stream_internal(any_member: Member) -> None:
    create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"w")).SerializeToString()
    with grpc_channel(any_member) as ch:
        call = ch.stream_stream("/etcdserverpb.Watch/Watch")(iter([create, b"\xff\xff\xff"]), timeout=10)
        replies = []
        with pytest.raises(grpc.RpcError) as e:
            replies.extend(call)
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert (e.value.details() or "").startswith(STREAM_UNMARSHAL), e.value.details()
    assert len(replies) <= 1  # the created reply may come first


@pytest.mark.parametrize("options", [{"sort_target": 42}, {"sort_order": 7}, {"sort_order": -1, "sort_target": 1}])
def test_out_of_range_sort_option_is_refused(pyetcd_member: Member, options: dict[str, int]) -> None:
    """etcd 3.5's answer ("invalid sort option"). pyetcd only: etcd 3.4 has no check, and the
    unknown target makes it call a nil sorter and exit (seen: a panic in applierV3backend.Range)."""
    with grpc_channel(pyetcd_member) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        kv.Put(rpc_pb2.PutRequest(key=b"a", value=b"1"), timeout=5)
        bad = rpc_pb2.RangeRequest(key=b"a", range_end=b"z", **options)
        for call in (lambda: kv.Range(bad, timeout=5),
                     lambda: kv.Txn(rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_range=bad)]), timeout=5)):
            with pytest.raises(grpc.RpcError) as e:
                call()
            assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                           "etcdserver: invalid sort option")


def test_long_password_is_accepted_as_etcd_does(any_member: Member) -> None:
    """bcrypt reads 72 bytes; etcd (Go's bcrypt) takes a longer password, pyetcd used to fail UNKNOWN."""
    with grpc_channel(any_member) as ch:
        auth = rpc_pb2_grpc.AuthStub(ch)
        auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="long", password="p" * 100), timeout=30)
        assert auth.UserGet(rpc_pb2.AuthUserGetRequest(name="long"), timeout=5).header.revision > 0


def test_too_long_user_name_is_refused_before_proposing(pyetcd_member: Member) -> None:
    """pyetcd's own limit (an LMDB key): etcd's bolt takes names up to 32 KiB and exits beyond."""
    with grpc_channel(pyetcd_member) as ch:
        auth = rpc_pb2_grpc.AuthStub(ch)
        for call in (lambda: auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="u" * 600, password="p"), timeout=30),
                     lambda: auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="r" * 600), timeout=30)):
            with pytest.raises(grpc.RpcError) as e:
                call()
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "too long" in (e.value.details() or "")
        auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="u" * 511, password="p"), timeout=30)
    assert pyetcd_member.running


def _auth_with_reader(ch: grpc.Channel) -> tuple[str, str]:
    """Auth on, with root and a user "alice" who may read key "w"; returns (root, alice) tokens."""
    auth = rpc_pb2_grpc.AuthStub(ch)
    auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="root"), timeout=10)
    auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="rootpw"), timeout=30)
    auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"), timeout=10)
    auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="reader"), timeout=10)
    perm = auth_pb2.Permission(permType=auth_pb2.Permission.READ, key=b"w")
    auth.RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(name="reader", perm=perm), timeout=10)
    auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="alice", password="alicepw"), timeout=30)
    auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="reader"), timeout=10)
    auth.AuthEnable(rpc_pb2.AuthEnableRequest(), timeout=10)
    tokens = [auth.Authenticate(rpc_pb2.AuthenticateRequest(name=n, password=p), timeout=30).token
              for n, p in (("root", "rootpw"), ("alice", "alicepw"))]
    return tokens[0], tokens[1]


def test_watch_with_a_deleted_users_token_is_created_then_canceled(any_member: Member) -> None:
    """etcd checks the caller at each create request and cancels that watch with the reason;
    the stream stays usable (pyetcd used to fail the whole stream at its start)."""
    with grpc_channel(any_member) as ch:
        root, alice = _auth_with_reader(ch)
        rpc_pb2_grpc.AuthStub(ch).UserDelete(rpc_pb2.AuthUserDeleteRequest(name="alice"), timeout=10,
                                             metadata=[("token", root)])
        create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"w"))
        call = rpc_pb2_grpc.WatchStub(ch).Watch(iter([create, create]), metadata=[("token", alice)], timeout=10)
        replies = [next(call), next(call)]
        call.cancel()
    for r in replies:
        assert (r.created, r.canceled, r.watch_id) == (True, True, -1), r
        assert r.cancel_reason == "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"
