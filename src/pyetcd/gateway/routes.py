"""etcd's grpc-gateway paths (the ``google.api.http`` options of etcd's rpc.proto, v3lock.proto
and v3election.proto; our proto/ copy drops those options)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    service: str  # as in rpc/services.py
    method: str
    streaming: bool = False  # a stream of requests in, one JSON result per line out


def _r(service: str, *methods: tuple[str, str]) -> dict[str, Route]:
    return {path: Route(service, method) for path, method in methods}


ROUTES: dict[str, Route] = {
    **_r("KV", ("/v3/kv/range", "Range"), ("/v3/kv/put", "Put"), ("/v3/kv/deleterange", "DeleteRange"),
         ("/v3/kv/txn", "Txn"), ("/v3/kv/compaction", "Compact")),
    "/v3/watch": Route("Watch", "Watch", streaming=True),
    **_r("Lease", ("/v3/lease/grant", "LeaseGrant"), ("/v3/lease/revoke", "LeaseRevoke"),
         ("/v3/kv/lease/revoke", "LeaseRevoke"), ("/v3/lease/timetolive", "LeaseTimeToLive"),
         ("/v3/kv/lease/timetolive", "LeaseTimeToLive"), ("/v3/lease/leases", "LeaseLeases"),
         ("/v3/kv/lease/leases", "LeaseLeases")),
    "/v3/lease/keepalive": Route("Lease", "LeaseKeepAlive", streaming=True),
    **_r("Cluster", ("/v3/cluster/member/add", "MemberAdd"), ("/v3/cluster/member/remove", "MemberRemove"),
         ("/v3/cluster/member/update", "MemberUpdate"), ("/v3/cluster/member/list", "MemberList"),
         ("/v3/cluster/member/promote", "MemberPromote")),
    # etcd registers Hash and HashKV on the same path; pyetcd serves HashKV (it has no Hash)
    **_r("Maintenance", ("/v3/maintenance/alarm", "Alarm"), ("/v3/maintenance/status", "Status"),
         ("/v3/maintenance/defragment", "Defragment"), ("/v3/maintenance/hash", "Hash"),
         ("/v3/maintenance/transfer-leadership", "MoveLeader")),
    "/v3/maintenance/snapshot": Route("Maintenance", "Snapshot", streaming=True),
    **_r("Auth", ("/v3/auth/enable", "AuthEnable"), ("/v3/auth/disable", "AuthDisable"),
         ("/v3/auth/authenticate", "Authenticate"), ("/v3/auth/user/add", "UserAdd"),
         ("/v3/auth/user/get", "UserGet"), ("/v3/auth/user/list", "UserList"),
         ("/v3/auth/user/delete", "UserDelete"), ("/v3/auth/user/changepw", "UserChangePassword"),
         ("/v3/auth/user/grant", "UserGrantRole"), ("/v3/auth/user/revoke", "UserRevokeRole"),
         ("/v3/auth/role/add", "RoleAdd"), ("/v3/auth/role/get", "RoleGet"), ("/v3/auth/role/list", "RoleList"),
         ("/v3/auth/role/delete", "RoleDelete"), ("/v3/auth/role/grant", "RoleGrantPermission"),
         ("/v3/auth/role/revoke", "RoleRevokePermission")),
    **_r("Lock", ("/v3/lock/lock", "Lock"), ("/v3/lock/unlock", "Unlock")),
    **_r("Election", ("/v3/election/campaign", "Campaign"), ("/v3/election/proclaim", "Proclaim"),
         ("/v3/election/leader", "Leader"), ("/v3/election/resign", "Resign")),
    "/v3/election/observe": Route("Election", "Observe", streaming=True),
}
