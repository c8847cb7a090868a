"""Auth over gRPC with explicit tokens, on real etcd and pyetcd alike: the status codes and
messages etcd answers, a denied watch, leases, maintenance; then, on pyetcd, that the store
survives a restart (and tokens, kept in memory as in etcd, do not)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from pyetcd.api import auth_pb2, rpc_pb2, rpc_pb2_grpc
from support import Member, grpc_channel

READ = auth_pb2.Permission.READ


def code_and_message(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code(), e.value.details()  # type: ignore[attr-defined]


def md(token: str) -> tuple[tuple[str, str], ...]:
    return (("token", token),)


def setup_auth(ch: grpc.Channel) -> tuple[str, str]:
    """root (root role) and u (read on "a"), auth enabled; returns their tokens."""
    auth = rpc_pb2_grpc.AuthStub(ch)
    auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="rootpw"))
    auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="root"))
    auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
    auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="u", password="upw"))
    auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="r"))
    auth.RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(
        name="r", perm=auth_pb2.Permission(permType=READ, key=b"a")))
    auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="u", role="r"))
    auth.AuthEnable(rpc_pb2.AuthEnableRequest())
    root = auth.Authenticate(rpc_pb2.AuthenticateRequest(name="root", password="rootpw")).token
    user = auth.Authenticate(rpc_pb2.AuthenticateRequest(name="u", password="upw")).token
    return root, user


def first_watch_response(ch: grpc.Channel, key: bytes, token: str) -> rpc_pb2.WatchResponse:
    def reqs() -> Iterator[rpc_pb2.WatchRequest]:
        yield rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key))
    call = rpc_pb2_grpc.WatchStub(ch).Watch(reqs(), metadata=md(token), timeout=10)
    try:
        return next(call)  # type: ignore[no-any-return]
    finally:
        call.cancel()


@pytest.mark.parametrize("kind", ["etcd", "pyetcd"])
def test_tokens_denials_watch_lease_and_maintenance(member_factory: Callable[..., Member], kind: str) -> None:
    m = member_factory(kind)
    with grpc_channel(m) as ch:
        root, user = setup_auth(ch)
        assert len(root.split(".")) == 2 and root.split(".")[1].isdigit()  # prefix.index, etcd's simple token
        kv = rpc_pb2_grpc.KVStub(ch)
        denied = (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")
        assert code_and_message(lambda: kv.Range(rpc_pb2.RangeRequest(key=b"a"), metadata=md("bogus.1"))) == \
            (grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token")
        assert code_and_message(lambda: kv.Put(rpc_pb2.PutRequest(key=b"a"), metadata=md(user))) == denied
        kv.Range(rpc_pb2.RangeRequest(key=b"a"), metadata=md(user))
        kv.Compact(rpc_pb2.CompactionRequest(revision=1), metadata=md(user))  # any user may compact, as in etcd
        # the client certificate's CN ("client") is no user here
        assert code_and_message(lambda: kv.Range(rpc_pb2.RangeRequest(key=b"a"))) == denied
        assert code_and_message(lambda: rpc_pb2_grpc.AuthStub(ch).UserList(rpc_pb2.AuthUserListRequest())) == \
            (grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: user name not found")

        ok = first_watch_response(ch, b"a", user)
        assert (ok.created, ok.canceled) == (True, False)
        no = first_watch_response(ch, b"b", user)
        assert (no.created, no.canceled, no.watch_id, no.cancel_reason) == \
            (True, True, -1, "rpc error: code = PermissionDenied desc = etcdserver: permission denied")

        lease = rpc_pb2_grpc.LeaseStub(ch)
        lid = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), metadata=md(user)).ID  # needs no permission
        kv.Put(rpc_pb2.PutRequest(key=b"b", lease=lid), metadata=md(root))
        assert code_and_message(lambda: lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lid),
                                                          metadata=md(user))) == denied
        ttl = rpc_pb2.LeaseTimeToLiveRequest(ID=lid, keys=True)
        if kind == "pyetcd":  # etcd checks read on the lease's keys since 3.4.26/3.5.9 (CVE-2023-32082);
            assert code_and_message(lambda: lease.LeaseTimeToLive(ttl, metadata=md(user))) == denied
        else:  # the installed 3.4.23 predates the fix and shows the keys
            assert list(lease.LeaseTimeToLive(ttl, metadata=md(user)).keys) == [b"b"]
        lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lid), metadata=md(root))

        maint = rpc_pb2_grpc.MaintenanceStub(ch)
        # etcd 3.4 passes the auth package's error through raw; 3.5 maps it (togRPCError) as pyetcd does
        raw = (grpc.StatusCode.UNKNOWN, "auth: permission denied")
        assert code_and_message(lambda: maint.Defragment(rpc_pb2.DefragmentRequest(), metadata=md(user))) == \
            (denied if kind == "pyetcd" else raw)
        maint.Defragment(rpc_pb2.DefragmentRequest(), metadata=md(root))
        maint.Status(rpc_pb2.StatusRequest())  # status needs no user
        auth = rpc_pb2_grpc.AuthStub(ch)
        assert code_and_message(lambda: auth.AuthDisable(rpc_pb2.AuthDisableRequest(), metadata=md(user))) == denied
        assert code_and_message(lambda: auth.Authenticate(rpc_pb2.AuthenticateRequest(name="u", password="x"))) == \
            (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password")
        auth.AuthDisable(rpc_pb2.AuthDisableRequest(), metadata=md(root))
        assert code_and_message(lambda: auth.Authenticate(rpc_pb2.AuthenticateRequest(name="u", password="upw"))) \
            == (grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: authentication is not enabled")


def test_auth_store_survives_restart(member_factory: Callable[..., Member]) -> None:
    m = member_factory("pyetcd")
    with grpc_channel(m) as ch:
        root, _ = setup_auth(ch)
        status = rpc_pb2_grpc.AuthStub(ch).AuthStatus(rpc_pb2.AuthStatusRequest())
        assert status.enabled and status.authRevision > 0
    m.restart()
    with grpc_channel(m) as ch:
        auth = rpc_pb2_grpc.AuthStub(ch)
        assert auth.AuthStatus(rpc_pb2.AuthStatusRequest()).authRevision == status.authRevision
        assert code_and_message(lambda: auth.UserList(rpc_pb2.AuthUserListRequest(), metadata=md(root)))[0] == \
            grpc.StatusCode.UNAUTHENTICATED  # tokens live in memory only
        fresh = auth.Authenticate(rpc_pb2.AuthenticateRequest(name="root", password="rootpw")).token
        assert list(auth.UserList(rpc_pb2.AuthUserListRequest(), metadata=md(fresh)).users) == ["root", "u"]
        got = auth.RoleGet(rpc_pb2.AuthRoleGetRequest(role="r"), metadata=md(fresh))
        assert [(p.permType, p.key) for p in got.perm] == [(READ, b"a")]
