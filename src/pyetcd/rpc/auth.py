"""etcdserverpb.Auth over gRPC. Changes and Authenticate go through raft, as in etcd; the reads
(user/role get and list, status) are answered from the store after a linearizable read.

Passwords are bcrypt-hashed here, before proposing (etcd 3.5's AuthUserAdd), so neither the
log nor the apply thread ever sees a clear password or pays for hashing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pyetcd import errors
from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.auth.passwords import check_password, hash_password
from pyetcd.auth.tokens import token_prefix
from pyetcd.server.etcd_server import EtcdServer

from . import validate
from .errors import unary


def _proposer(kind: str) -> Any:
    """A handler that proposes its request as the InternalRequest field ``kind``, unchanged."""
    @unary
    async def propose(self: AuthService, r: Any, context: Any) -> Any:
        return await self._propose(**{kind: r})
    return propose


class AuthService:
    def __init__(self, server: EtcdServer) -> None:
        self.s = server

    # the changes that go to raft as they come
    AuthEnable = _proposer("auth_enable")
    AuthDisable = _proposer("auth_disable")
    UserDelete = _proposer("auth_user_delete")
    UserGrantRole = _proposer("auth_user_grant_role")
    UserRevokeRole = _proposer("auth_user_revoke_role")
    RoleDelete = _proposer("auth_role_delete")
    RoleGrantPermission = _proposer("auth_role_grant_permission")
    RoleRevokePermission = _proposer("auth_role_revoke_permission")

    async def _propose(self, **request: Any) -> Any:
        resp = await self.s.propose(internal_pb2.InternalRequest(**request))
        self.s.fill_header(resp.header)
        return resp

    @unary
    async def AuthStatus(self, r: rpc_pb2.AuthStatusRequest, context: Any) -> rpc_pb2.AuthStatusResponse:
        await self.s.linearizable_read()
        st = self.s.auth_state
        return rpc_pb2.AuthStatusResponse(header=self.s.header(), enabled=st.enabled, authRevision=st.revision)

    @unary
    async def Authenticate(self, r: rpc_pb2.AuthenticateRequest, context: Any) -> rpc_pb2.AuthenticateResponse:
        """Check the password here, then let raft issue the token on every member (the entry
        carries a fresh token prefix, never the password); retry should the auth store change
        in between, as etcd does."""
        await self.s.linearizable_read()
        while True:
            checked = await asyncio.to_thread(check_password, self.s.auth_state, r.name, r.password)
            issue = internal_pb2.InternalAuthenticateRequest(name=r.name, simple_token=token_prefix())
            resp = await self._propose(authenticate=issue)
            if checked == self.s.auth_state.revision:
                return resp  # type: ignore[no-any-return]

    @unary
    async def UserAdd(self, r: rpc_pb2.AuthUserAddRequest, context: Any) -> rpc_pb2.AuthUserAddResponse:
        if not r.name:
            raise errors.ErrUserEmpty()
        validate.check_auth_name(r.name)
        if not r.options.no_password and not r.hashedPassword:
            r.hashedPassword = await asyncio.to_thread(hash_password, r.password, self.s.cfg.bcrypt_cost)
        r.password = ""
        return await self._propose(auth_user_add=r)  # type: ignore[no-any-return]

    @unary
    async def RoleAdd(self, r: rpc_pb2.AuthRoleAddRequest, context: Any) -> rpc_pb2.AuthRoleAddResponse:
        validate.check_auth_name(r.name)
        return await self._propose(auth_role_add=r)  # type: ignore[no-any-return]

    @unary
    async def UserGet(self, r: rpc_pb2.AuthUserGetRequest, context: Any) -> rpc_pb2.AuthUserGetResponse:
        await self.s.linearizable_read()
        user = self.s.auth_state.users.get(r.name)
        if user is None:
            raise errors.ErrUserNotFound()
        return rpc_pb2.AuthUserGetResponse(header=self.s.header(), roles=list(user.roles))

    @unary
    async def UserList(self, r: rpc_pb2.AuthUserListRequest, context: Any) -> rpc_pb2.AuthUserListResponse:
        await self.s.linearizable_read()
        return rpc_pb2.AuthUserListResponse(header=self.s.header(), users=sorted(self.s.auth_state.users))

    @unary
    async def UserChangePassword(self, r: rpc_pb2.AuthUserChangePasswordRequest,
                                 context: Any) -> rpc_pb2.AuthUserChangePasswordResponse:
        if not r.hashedPassword:
            r.hashedPassword = await asyncio.to_thread(hash_password, r.password, self.s.cfg.bcrypt_cost)
        r.password = ""
        return await self._propose(auth_user_change_password=r)  # type: ignore[no-any-return]

    @unary
    async def RoleGet(self, r: rpc_pb2.AuthRoleGetRequest, context: Any) -> rpc_pb2.AuthRoleGetResponse:
        await self.s.linearizable_read()
        role = self.s.auth_state.roles.get(r.role)
        if role is None:
            raise errors.ErrRoleNotFound()
        return rpc_pb2.AuthRoleGetResponse(header=self.s.header(), perm=list(role.keyPermission))

    @unary
    async def RoleList(self, r: rpc_pb2.AuthRoleListRequest, context: Any) -> rpc_pb2.AuthRoleListResponse:
        await self.s.linearizable_read()
        return rpc_pb2.AuthRoleListResponse(header=self.s.header(), roles=sorted(self.s.auth_state.roles))

