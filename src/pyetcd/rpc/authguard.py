"""The one check in front of every call: the client certificate against the CRL, then auth.

With auth enabled the caller is resolved as etcd does (the ``token`` metadata, else — with
--client-cert-auth — the client certificate's CN) and the call is checked by method name:
key ranges for KV and leases, root for administrative calls (etcd's authApplierV3,
authMaintenanceServer, checkMembershipOperationPermission). Writes are checked again at apply
with the auth revision recorded here (``pyetcd.auth.context``). With auth disabled the guard
returns at once: no metadata is parsed, nothing else runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pyetcd import errors
from pyetcd.api import rpc_pb2
from pyetcd.auth import context as auth_context
from pyetcd.auth.context import NOBODY, AuthInfo
from pyetcd.auth.perms import READ, WRITE
from pyetcd.auth.state import AuthState
from pyetcd.server.etcd_server import EtcdServer

from .crl import RevocationCheck
from .errors import abort

TOKEN_KEYS = ("token", "authorization")  # clientv3's key, and the gateway's
ADMIN_METHODS = frozenset({
    "Defragment", "Snapshot", "Hash", "HashKV", "MoveLeader", "Downgrade",
    "MemberAdd", "MemberRemove", "MemberUpdate", "MemberPromote",
    "AuthEnable", "AuthDisable", "UserAdd", "UserDelete", "UserChangePassword", "UserGrantRole",
    "UserRevokeRole", "UserList", "RoleAdd", "RoleDelete", "RoleGrantPermission", "RoleRevokePermission",
    "RoleList",
})
UNCHECKED = frozenset({"Authenticate", "AuthStatus"})  # no caller needed, and a stale token is no error

Check = Callable[["CallGuard", AuthState, AuthInfo, Any], None]
# the call's client certificate, as grpc's auth-context keys (x509_common_name, x509_pem_cert)
Identify = Callable[[Any], Mapping[str, list[bytes]]]


def grpc_identity(context: Any) -> Mapping[str, list[bytes]]:
    """The client certificate grpc's own TLS saw (gateway/identities.py: when the front ended TLS)."""
    return context.auth_context()  # type: ignore[no-any-return]


class CallGuard:
    def __init__(self, server: EtcdServer, crl: RevocationCheck | None = None,
                 identify: Identify = grpc_identity) -> None:
        self.s = server
        self.crl = crl
        self.identify = identify

    async def __call__(self, method: str, request: Any, context: Any) -> None:
        if self.crl is not None:
            await self.crl.check(context, self.identify(context))
        st = self.s.auth_state
        if not st.enabled or method in UNCHECKED:
            return
        if method == "Watch":  # each create request is checked, caller included (watch_refusal)
            return
        try:
            info = self.caller(context, st)
            auth_context.current.set(info)
            if method in ADMIN_METHODS:
                st.check_admin(info)
            else:
                check = _CHECKS.get(method)
                if check is not None:
                    check(self, st, info, request)
        except errors.EtcdError as e:
            await abort(context, e)

    def caller(self, context: Any, st: AuthState) -> AuthInfo:
        return resolve_caller(self.s, context, st, self.identify)

    def lease_keys(self, lease_id: int) -> list[bytes]:
        return self.s.lease_keys(lease_id)


def resolve_caller(server: EtcdServer, context: Any, st: AuthState, identify: Identify) -> AuthInfo:
    """etcd's AuthInfoFromCtx, then AuthInfoFromTLS; NOBODY when neither names a user."""
    for key, value in context.invocation_metadata() or ():
        if key in TOKEN_KEYS:
            found = server.auth_tokens.info(value, st.revision)
            if found is None:
                raise errors.ErrInvalidAuthToken()
            return AuthInfo(*found)
    if server.cfg.client_tls.client_cert_auth:
        cn = identify(context).get("x509_common_name")
        if cn:
            return AuthInfo(cn[0].decode(), st.revision)
    return NOBODY


def watch_refusal(server: EtcdServer, context: Any, c: rpc_pb2.WatchCreateRequest,
                  identify: Identify) -> str | None:
    """Why a watch may not be created (etcd's isWatchPermitted, run for each create request:
    the caller is resolved afresh, so a token invalidated meanwhile cancels the watch with
    etcd's reason instead of failing the stream), as etcd's cancel reason."""
    st = server.auth_state
    if not st.enabled:
        return None
    try:
        who = resolve_caller(server, context, st, identify)
        st.check_op(AuthInfo(who.username, st.revision if who.username else 0), c.key, c.range_end, READ)
    except errors.EtcdError as e:
        go_code = "".join(part.capitalize() for part in e.code.split("_"))
        return f"rpc error: code = {go_code} desc = {e.message}"
    return None


def _range(g: CallGuard, st: AuthState, who: AuthInfo, r: rpc_pb2.RangeRequest) -> None:
    st.check_op(who, r.key, r.range_end, READ)


def _put(g: CallGuard, st: AuthState, who: AuthInfo, r: rpc_pb2.PutRequest) -> None:
    st.check_op(who, r.key, b"", WRITE)
    if r.prev_kv:
        st.check_op(who, r.key, b"", READ)
    for key in g.lease_keys(r.lease) if r.lease else ():
        st.check_op(who, key, b"", WRITE)


def _delete(g: CallGuard, st: AuthState, who: AuthInfo, r: rpc_pb2.DeleteRangeRequest) -> None:
    st.check_op(who, r.key, r.range_end, WRITE)
    if r.prev_kv:
        st.check_op(who, r.key, r.range_end, READ)


def _txn(g: CallGuard, st: AuthState, who: AuthInfo, r: rpc_pb2.TxnRequest) -> None:
    st.check_txn(who, r)


def _lease_revoke(g: CallGuard, st: AuthState, who: AuthInfo, r: rpc_pb2.LeaseRevokeRequest) -> None:
    for key in g.lease_keys(r.ID):
        st.check_op(who, key, b"", WRITE)


def _lease_ttl(g: CallGuard, st: AuthState, who: AuthInfo, r: rpc_pb2.LeaseTimeToLiveRequest) -> None:
    if not who.username:
        raise errors.ErrUserEmpty()
    for key in g.lease_keys(r.ID):
        st.check_op(who, key, b"", READ)


def _user_get(g: CallGuard, st: AuthState, who: AuthInfo, r: rpc_pb2.AuthUserGetRequest) -> None:
    if r.name != who.username or not who.username:  # anyone may read their own record
        st.check_admin(who)


def _role_get(g: CallGuard, st: AuthState, who: AuthInfo, r: rpc_pb2.AuthRoleGetRequest) -> None:
    user = st.users.get(who.username)
    if user is None or r.role not in user.roles:  # nor the roles they hold
        st.check_admin(who)


_CHECKS: dict[str, Check] = {
    "Range": _range, "Put": _put, "DeleteRange": _delete, "Txn": _txn,
    "LeaseRevoke": _lease_revoke, "LeaseTimeToLive": _lease_ttl,
    "UserGet": _user_get, "RoleGet": _role_get,
}
