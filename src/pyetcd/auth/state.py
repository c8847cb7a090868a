"""One immutable view of the auth store, and etcd's checks against it (isOpPermitted,
IsAdminPermitted, checkTxnAuth). The apply thread builds a new view for every change; readers
keep whichever view they took."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from pyetcd import errors
from pyetcd.api import auth_pb2, rpc_pb2

from .context import AuthInfo
from .perms import READ, WRITE, UserPerms

ROOT = "root"
Users = MappingProxyType[str, auth_pb2.User]
Roles = MappingProxyType[str, auth_pb2.Role]


def has_root_role(user: auth_pb2.User) -> bool:
    return ROOT in user.roles


def with_roles(user: auth_pb2.User, roles: list[str]) -> auth_pb2.User:
    """A copy of ``user`` holding ``roles`` (sorted, as etcd keeps them)."""
    new = auth_pb2.User()
    new.CopyFrom(user)
    del new.roles[:]
    new.roles.extend(sorted(roles))
    return new


@dataclass(frozen=True)
class AuthState:
    """One consistent view of the store. Never mutated: changes build a new one."""

    enabled: bool = False
    revision: int = 0
    users: Users = field(default_factory=lambda: MappingProxyType({}))
    roles: Roles = field(default_factory=lambda: MappingProxyType({}))
    perms: MappingProxyType[str, UserPerms] = field(default_factory=lambda: MappingProxyType({}))

    def with_changes(self, users: dict[str, auth_pb2.User] | None = None,
                     roles: dict[str, auth_pb2.Role] | None = None, **kw: Any) -> AuthState:
        u = MappingProxyType(users) if users is not None else self.users
        r = MappingProxyType(roles) if roles is not None else self.roles
        perms = self.perms
        if users is not None or roles is not None:
            perms = MappingProxyType({name: UserPerms.merge(r[role] for role in user.roles if role in r)
                                      for name, user in u.items()})
        return replace(self, users=u, roles=r, perms=perms, **kw)

    # ---- checks (etcd's isOpPermitted, IsAdminPermitted) -------------------------------------
    def check_op(self, info: AuthInfo, key: bytes, range_end: bytes, perm: int) -> None:
        if not self.enabled:
            return
        if info.revision == 0:
            raise errors.ErrUserEmpty()
        if info.revision < self.revision:
            raise errors.ErrAuthOldRevision()
        user = self.users.get(info.username)
        if user is None:
            raise errors.ErrPermissionDenied()
        if has_root_role(user):
            return
        perms = self.perms.get(info.username)
        if perms is None or not perms.allows(key, range_end, perm):
            raise errors.ErrPermissionDenied()

    def check_admin(self, info: AuthInfo | None) -> None:
        if not self.enabled:
            return
        if info is None or not info.username:
            raise errors.ErrUserEmpty()
        user = self.users.get(info.username)
        if user is None:
            raise errors.ErrUserNotFound()
        if not has_root_role(user):
            raise errors.ErrPermissionDenied()

    def check_txn(self, info: AuthInfo, t: rpc_pb2.TxnRequest) -> None:
        """Every compare needs read; every op its own permission (etcd's checkTxnAuth)."""
        for c in t.compare:
            self.check_op(info, c.key, c.range_end, READ)
        for op in (*t.success, *t.failure):
            kind = op.WhichOneof("request")
            if kind == "request_range":
                self.check_op(info, op.request_range.key, op.request_range.range_end, READ)
            elif kind == "request_put":
                self.check_op(info, op.request_put.key, b"", WRITE)
            elif kind == "request_delete_range":
                d = op.request_delete_range
                if d.prev_kv:
                    self.check_op(info, d.key, d.range_end, READ)
                self.check_op(info, d.key, d.range_end, WRITE)
            elif kind == "request_txn":
                self.check_txn(info, op.request_txn)
