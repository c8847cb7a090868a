"""The auth store: users, roles, the enabled flag and the auth revision (etcd's auth/store.go).

Persisted in the ``auth`` (authEnabled, authRevision), ``authUsers`` (name -> authpb.User) and
``authRoles`` (name -> authpb.Role) buckets, in etcd's encodings. Every change arrives as a
committed raft entry and is applied on the apply thread inside the batch's transaction; the
apply thread works on ``applied`` and the event loop reads ``state``, an immutable snapshot
swapped in by the batch's publish hook once the change is durable.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from pyetcd import errors
from pyetcd.api import auth_pb2, internal_pb2, rpc_pb2
from pyetcd.storage.backend import AUTH, AUTH_ROLES, AUTH_USERS, Backend

from .context import AuthInfo
from .perms import READ, WRITE
from .state import ROOT, AuthState, has_root_role, with_roles
from .tokens import TOKEN_TTL, TokenConfig, make_token_provider

_ENABLED_KEY = b"authEnabled"
_REVISION_KEY = b"authRevision"
_U64 = struct.Struct(">Q")


class ApplyBatch(Protocol):
    """What the store needs of an apply batch (``pyetcd.server.batch.ApplyBatch``)."""

    txn: Any  # the batch's LMDB write transaction
    entry_index: int  # raft index of the entry being applied

    def on_publish(self, hook: Callable[[], None]) -> None: ...


def _admin_kinds() -> frozenset[str]:
    return frozenset(f.name for f in internal_pb2.InternalRequest.DESCRIPTOR.oneofs_by_name["request"].fields
                     if f.name.startswith("auth_"))


ADMIN_KINDS = _admin_kinds()


class AuthStore:
    """Loads the store, applies its raft entries, and re-checks writes at apply time."""

    def __init__(self, backend: Backend, token_ttl: float = TOKEN_TTL,
                 token_config: TokenConfig | None = None) -> None:
        self.backend = backend
        self.tokens = make_token_provider(token_config or TokenConfig(), token_ttl)
        self.reload()

    def reload(self) -> None:
        """Read users, roles and the enabled flag from the backend (at start, or after the
        store was replaced by a leader's snapshot)."""
        backend = self.backend
        with backend.read() as txn:
            raw_enabled = txn.get(_ENABLED_KEY, db=backend.db(AUTH))
            raw_rev = txn.get(_REVISION_KEY, db=backend.db(AUTH))
            users = {bytes(k).decode(): auth_pb2.User.FromString(bytes(v))
                     for k, v in txn.cursor(db=backend.db(AUTH_USERS)).iternext()}
            roles = {bytes(k).decode(): auth_pb2.Role.FromString(bytes(v))
                     for k, v in txn.cursor(db=backend.db(AUTH_ROLES)).iternext()}
        self.state = AuthState(enabled=raw_enabled == b"\x01",
                               revision=_U64.unpack(bytes(raw_rev))[0] if raw_rev else 0).with_changes(users, roles)
        self.applied = self.state  # the apply thread's view; ahead of ``state`` until published

    def register(self, applier: Any) -> None:
        """Hook the store into the applier: its request kinds, and the apply-time permission check."""
        for kind in ADMIN_KINDS:
            applier.register(kind, getattr(self, "apply_" + kind.removeprefix("auth_")))
        applier.register("authenticate", self.apply_authenticate)
        applier.guards.append(self.check_apply)

    # ---- the apply-time check (etcd's authApplierV3) -----------------------------------------
    def check_apply(self, req: internal_pb2.InternalRequest) -> None:
        st = self.applied
        if not st.enabled:
            return
        kind = req.WhichOneof("request")
        info = AuthInfo(req.header.username, req.header.auth_revision)
        if kind in ADMIN_KINDS:
            st.check_admin(info)
        elif kind == "put":
            st.check_op(info, req.put.key, b"", WRITE)
            if req.put.prev_kv:
                st.check_op(info, req.put.key, b"", READ)
        elif kind == "delete_range":
            d = req.delete_range
            st.check_op(info, d.key, d.range_end, WRITE)
            if d.prev_kv:
                st.check_op(info, d.key, d.range_end, READ)
        elif kind == "txn":
            st.check_txn(info, req.txn)

    # ---- persistence ------------------------------------------------------------------------
    def _commit(self, batch: ApplyBatch, new: AuthState, bump: bool = True,
                after: Any = None) -> None:
        """Write the revision (bumped, as etcd's commitRevision), swap views, publish later."""
        if bump:
            new = replace(new, revision=new.revision + 1)
            batch.txn.put(_REVISION_KEY, _U64.pack(new.revision), db=self.backend.db(AUTH))
        self.applied = new

        def publish() -> None:
            self.state = new
            if after is not None:
                after()
        batch.on_publish(publish)

    def _put_user(self, batch: ApplyBatch, user: auth_pb2.User) -> None:
        _check_name(user.name)
        batch.txn.put(user.name, user.SerializeToString(), db=self.backend.db(AUTH_USERS))

    def _put_role(self, batch: ApplyBatch, role: auth_pb2.Role) -> None:
        _check_name(role.name)
        batch.txn.put(role.name, role.SerializeToString(), db=self.backend.db(AUTH_ROLES))

    def _user(self, name: str) -> auth_pb2.User:
        user = self.applied.users.get(name)
        if user is None:
            raise errors.ErrUserNotFound()
        return user

    def _role(self, name: str) -> auth_pb2.Role:
        role = self.applied.roles.get(name)
        if role is None:
            raise errors.ErrRoleNotFound()
        return role

    def _replace_user(self, batch: ApplyBatch, user: auth_pb2.User, after: Any = None) -> None:
        self._put_user(batch, user)
        users = dict(self.applied.users)
        users[user.name.decode()] = user
        self._commit(batch, self.applied.with_changes(users=users), after=after)

    # ---- apply handlers, one per request kind -------------------------------------------------
    def apply_enable(self, batch: ApplyBatch, r: rpc_pb2.AuthEnableRequest) -> rpc_pb2.AuthEnableResponse:
        st = self.applied
        if not st.enabled:
            root = st.users.get(ROOT)
            if root is None:
                raise errors.ErrRootUserNotExist()
            if not has_root_role(root):
                raise errors.ErrRootRoleNotExist()
            batch.txn.put(_ENABLED_KEY, b"\x01", db=self.backend.db(AUTH))
            self._commit(batch, replace(st, enabled=True), bump=False)
        return rpc_pb2.AuthEnableResponse()

    def apply_disable(self, batch: ApplyBatch, r: rpc_pb2.AuthDisableRequest) -> rpc_pb2.AuthDisableResponse:
        st = self.applied
        if st.enabled:
            batch.txn.put(_ENABLED_KEY, b"\x00", db=self.backend.db(AUTH))
            self._commit(batch, replace(st, enabled=False), after=self.tokens.clear)
        return rpc_pb2.AuthDisableResponse()

    def apply_authenticate(self, batch: ApplyBatch,
                           r: internal_pb2.InternalAuthenticateRequest) -> rpc_pb2.AuthenticateResponse:
        """Issue the token ``<prefix>.<entry index>``: the same on every member (the proposer
        checked the password and drew the prefix)."""
        st = self.applied
        if not st.enabled:
            raise errors.ErrAuthNotEnabled()
        user = st.users.get(r.name)
        if user is None or user.options.no_password:
            raise errors.ErrAuthFailed()
        name, prefix, index = r.name, r.simple_token, batch.entry_index
        token = self.tokens.issue(name, prefix, index, st.revision)

        def assign() -> None:
            self.tokens.assign(name, prefix, index)
        batch.on_publish(assign)
        return rpc_pb2.AuthenticateResponse(token=token)

    def apply_user_add(self, batch: ApplyBatch, r: rpc_pb2.AuthUserAddRequest) -> rpc_pb2.AuthUserAddResponse:
        if not r.name:
            raise errors.ErrUserEmpty()
        if r.name in self.applied.users:
            raise errors.ErrUserAlreadyExist()
        user = auth_pb2.User(name=r.name.encode(), options=r.options)
        if not r.options.no_password:
            user.password = r.hashedPassword.encode()
        self._replace_user(batch, user)
        return rpc_pb2.AuthUserAddResponse()

    def apply_user_delete(self, batch: ApplyBatch,
                          r: rpc_pb2.AuthUserDeleteRequest) -> rpc_pb2.AuthUserDeleteResponse:
        if self.applied.enabled and r.name == ROOT:
            raise errors.ErrInvalidAuthMgmt()
        self._user(r.name)
        batch.txn.delete(r.name.encode(), db=self.backend.db(AUTH_USERS))
        users = dict(self.applied.users)
        del users[r.name]
        self._commit(batch, self.applied.with_changes(users=users),
                     after=lambda: self.tokens.invalidate_user(r.name))
        return rpc_pb2.AuthUserDeleteResponse()

    def apply_user_change_password(self, batch: ApplyBatch, r: rpc_pb2.AuthUserChangePasswordRequest
                                   ) -> rpc_pb2.AuthUserChangePasswordResponse:
        user = auth_pb2.User()
        user.CopyFrom(self._user(r.name))
        user.password = r.hashedPassword.encode()
        self._replace_user(batch, user, after=lambda: self.tokens.invalidate_user(r.name))
        return rpc_pb2.AuthUserChangePasswordResponse()

    def apply_user_grant_role(self, batch: ApplyBatch,
                              r: rpc_pb2.AuthUserGrantRoleRequest) -> rpc_pb2.AuthUserGrantRoleResponse:
        old = self._user(r.user)
        if r.role != ROOT:
            self._role(r.role)  # the root role may be granted before it exists, as in etcd
        if r.role not in old.roles:
            self._replace_user(batch, with_roles(old, [*old.roles, r.role]))
        return rpc_pb2.AuthUserGrantRoleResponse()

    def apply_user_revoke_role(self, batch: ApplyBatch,
                               r: rpc_pb2.AuthUserRevokeRoleRequest) -> rpc_pb2.AuthUserRevokeRoleResponse:
        if self.applied.enabled and r.name == ROOT and r.role == ROOT:
            raise errors.ErrInvalidAuthMgmt()
        old = self._user(r.name)
        if r.role not in old.roles:
            raise errors.ErrRoleNotGranted()
        self._replace_user(batch, with_roles(old, [role for role in old.roles if role != r.role]))
        return rpc_pb2.AuthUserRevokeRoleResponse()

    def apply_role_add(self, batch: ApplyBatch, r: rpc_pb2.AuthRoleAddRequest) -> rpc_pb2.AuthRoleAddResponse:
        if not r.name:
            raise errors.ErrRoleEmpty()
        if r.name in self.applied.roles:
            raise errors.ErrRoleAlreadyExist()
        role = auth_pb2.Role(name=r.name.encode())
        self._put_role(batch, role)
        self._commit(batch, self.applied.with_changes(roles={**self.applied.roles, r.name: role}))
        return rpc_pb2.AuthRoleAddResponse()

    def apply_role_delete(self, batch: ApplyBatch,
                          r: rpc_pb2.AuthRoleDeleteRequest) -> rpc_pb2.AuthRoleDeleteResponse:
        if self.applied.enabled and r.role == ROOT:
            raise errors.ErrInvalidAuthMgmt()
        self._role(r.role)
        batch.txn.delete(r.role.encode(), db=self.backend.db(AUTH_ROLES))
        roles = dict(self.applied.roles)
        del roles[r.role]
        users = dict(self.applied.users)
        for name, old in self.applied.users.items():
            if r.role in old.roles:  # the role goes from every user that had it
                user = with_roles(old, [role for role in old.roles if role != r.role])
                self._put_user(batch, user)
                users[name] = user
        self._commit(batch, self.applied.with_changes(users=users, roles=roles))
        return rpc_pb2.AuthRoleDeleteResponse()

    def apply_role_grant_permission(self, batch: ApplyBatch, r: rpc_pb2.AuthRoleGrantPermissionRequest
                                    ) -> rpc_pb2.AuthRoleGrantPermissionResponse:
        old = self._role(r.name)
        perms = [p for p in old.keyPermission if (p.key, p.range_end) != (r.perm.key, r.perm.range_end)]
        perms.append(auth_pb2.Permission(permType=r.perm.permType, key=r.perm.key, range_end=r.perm.range_end))
        perms.sort(key=lambda p: p.key)
        role = auth_pb2.Role(name=old.name, keyPermission=perms)
        self._put_role(batch, role)
        self._commit(batch, self.applied.with_changes(roles={**self.applied.roles, r.name: role}))
        return rpc_pb2.AuthRoleGrantPermissionResponse()

    def apply_role_revoke_permission(self, batch: ApplyBatch, r: rpc_pb2.AuthRoleRevokePermissionRequest
                                     ) -> rpc_pb2.AuthRoleRevokePermissionResponse:
        old = self._role(r.role)
        perms = [p for p in old.keyPermission if (p.key, p.range_end) != (r.key, r.range_end)]
        if len(perms) == len(old.keyPermission):
            raise errors.ErrPermissionNotGranted()
        role = auth_pb2.Role(name=old.name, keyPermission=perms)
        self._put_role(batch, role)
        self._commit(batch, self.applied.with_changes(roles={**self.applied.roles, r.role: role}))
        return rpc_pb2.AuthRoleRevokePermissionResponse()


MAX_NAME_BYTES = 511  # user and role names are LMDB keys, which hold at most 511 bytes


def _check_name(name: bytes) -> None:
    """Refuse a name LMDB cannot store (the rpc layer refuses it first; an entry committed
    anyway must get an error, never an exception that stops apply)."""
    if len(name) > MAX_NAME_BYTES:
        raise errors.ErrAuthNameTooLong()
