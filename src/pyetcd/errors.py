"""etcd's errors, in one table: each carries the gRPC status code name and etcd's exact message.

Clients (etcdctl, clientv3, kube-apiserver) match on these strings, so they are copied to the
letter from etcd's ``rpctypes``. Lower layers raise ``EtcdError`` subclasses without importing
grpc; ``pyetcd.rpc.errors`` turns them into gRPC statuses.
"""

from __future__ import annotations


class EtcdError(Exception):
    """An error an etcd client can receive: ``code`` is a grpc.StatusCode name."""

    code = "UNKNOWN"
    message = "etcdserver: unknown error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message:
            self.message = message

    def __str__(self) -> str:
        return self.message


def _error(name: str, code: str, message: str) -> type[EtcdError]:
    return type(name, (EtcdError,), {"code": code, "message": message, "__doc__": message})


ErrEmptyKey = _error("ErrEmptyKey", "INVALID_ARGUMENT", "etcdserver: key is not provided")
ErrKeyNotFound = _error("ErrKeyNotFound", "INVALID_ARGUMENT", "etcdserver: key not found")
ErrValueProvided = _error("ErrValueProvided", "INVALID_ARGUMENT", "etcdserver: value is provided")
ErrLeaseProvided = _error("ErrLeaseProvided", "INVALID_ARGUMENT", "etcdserver: lease is provided")
ErrTooManyOps = _error("ErrTooManyOps", "INVALID_ARGUMENT", "etcdserver: too many operations in txn request")
ErrInvalidSortOption = _error("ErrInvalidSortOption", "INVALID_ARGUMENT", "etcdserver: invalid sort option")
ErrDuplicateKey = _error("ErrDuplicateKey", "INVALID_ARGUMENT", "etcdserver: duplicate key given in txn request")
ErrCompacted = _error("ErrCompacted", "OUT_OF_RANGE", "etcdserver: mvcc: required revision has been compacted")
ErrFutureRev = _error("ErrFutureRev", "OUT_OF_RANGE", "etcdserver: mvcc: required revision is a future revision")
ErrNoSpace = _error("ErrNoSpace", "RESOURCE_EXHAUSTED", "etcdserver: mvcc: database space exceeded")

ErrLeaseNotFound = _error("ErrLeaseNotFound", "NOT_FOUND", "etcdserver: requested lease not found")
ErrLeaseExist = _error("ErrLeaseExist", "FAILED_PRECONDITION", "etcdserver: lease already exists")
ErrLeaseTTLTooLarge = _error("ErrLeaseTTLTooLarge", "OUT_OF_RANGE", "etcdserver: too large lease TTL")

ErrWatchCanceled = _error("ErrWatchCanceled", "CANCELLED", "etcdserver: watch canceled")

ErrMemberExist = _error("ErrMemberExist", "FAILED_PRECONDITION", "etcdserver: member ID already exist")
ErrPeerURLExist = _error("ErrPeerURLExist", "FAILED_PRECONDITION", "etcdserver: Peer URLs already exists")
ErrMemberNotEnoughStarted = _error(
    "ErrMemberNotEnoughStarted", "FAILED_PRECONDITION",
    "etcdserver: re-configuration failed due to not enough started members")
ErrMemberBadURLs = _error("ErrMemberBadURLs", "INVALID_ARGUMENT", "etcdserver: given member URLs are invalid")
ErrMemberNotFound = _error("ErrMemberNotFound", "NOT_FOUND", "etcdserver: member not found")
ErrMemberNotLearner = _error("ErrMemberNotLearner", "FAILED_PRECONDITION",
                             "etcdserver: can only promote a learner member")
ErrLearnerNotReady = _error("ErrLearnerNotReady", "FAILED_PRECONDITION",
                            "etcdserver: can only promote a learner member which is in sync with leader")
ErrTooManyLearners = _error("ErrTooManyLearners", "FAILED_PRECONDITION",
                            "etcdserver: too many learner members in cluster")

ErrRequestTooLarge = _error("ErrRequestTooLarge", "INVALID_ARGUMENT", "etcdserver: request is too large")
ErrTooManyRequests = _error("ErrTooManyRequests", "RESOURCE_EXHAUSTED", "etcdserver: too many requests")

ErrRootUserNotExist = _error("ErrRootUserNotExist", "FAILED_PRECONDITION", "etcdserver: root user does not exist")
ErrRootRoleNotExist = _error("ErrRootRoleNotExist", "FAILED_PRECONDITION",
                             "etcdserver: root user does not have root role")
ErrUserAlreadyExist = _error("ErrUserAlreadyExist", "FAILED_PRECONDITION", "etcdserver: user name already exists")
ErrUserEmpty = _error("ErrUserEmpty", "INVALID_ARGUMENT", "etcdserver: user name is empty")
ErrUserNotFound = _error("ErrUserNotFound", "FAILED_PRECONDITION", "etcdserver: user name not found")
ErrRoleAlreadyExist = _error("ErrRoleAlreadyExist", "FAILED_PRECONDITION", "etcdserver: role name already exists")
ErrRoleNotFound = _error("ErrRoleNotFound", "FAILED_PRECONDITION", "etcdserver: role name not found")
ErrRoleEmpty = _error("ErrRoleEmpty", "INVALID_ARGUMENT", "etcdserver: role name is empty")
ErrAuthFailed = _error("ErrAuthFailed", "INVALID_ARGUMENT",
                       "etcdserver: authentication failed, invalid user ID or password")
ErrPermissionDenied = _error("ErrPermissionDenied", "PERMISSION_DENIED", "etcdserver: permission denied")
ErrRoleNotGranted = _error("ErrRoleNotGranted", "FAILED_PRECONDITION", "etcdserver: role is not granted to the user")
ErrPermissionNotGranted = _error("ErrPermissionNotGranted", "FAILED_PRECONDITION",
                                 "etcdserver: permission is not granted to the role")
ErrAuthNotEnabled = _error("ErrAuthNotEnabled", "FAILED_PRECONDITION", "etcdserver: authentication is not enabled")
ErrInvalidAuthToken = _error("ErrInvalidAuthToken", "UNAUTHENTICATED", "etcdserver: invalid auth token")
# pyetcd's own (etcd's bolt takes keys up to 32 KiB and exits on a longer one): user and role
# names are LMDB keys, which hold at most 511 bytes; refused before they are proposed
ErrAuthNameTooLong = _error("ErrAuthNameTooLong", "INVALID_ARGUMENT",
                            "etcdserver: user or role name is too long (at most 511 bytes)")
# pyetcd's own: etcd 3.4 answers nothing here (an unknown alarm action leaves its response nil,
# and marshalling that stops the process)
ErrInvalidAlarmAction = _error("ErrInvalidAlarmAction", "INVALID_ARGUMENT",
                               "etcdserver: invalid alarm action (GET, ACTIVATE or DEACTIVATE)")
ErrInvalidAuthMgmt = _error("ErrInvalidAuthMgmt", "INVALID_ARGUMENT", "etcdserver: invalid auth management")
ErrAuthOldRevision = _error("ErrAuthOldRevision", "INVALID_ARGUMENT", "etcdserver: revision of auth store is old")

ErrNoLeader = _error("ErrNoLeader", "UNAVAILABLE", "etcdserver: no leader")
ErrNotLeader = _error("ErrNotLeader", "FAILED_PRECONDITION", "etcdserver: not leader")
ErrLeaderChanged = _error("ErrLeaderChanged", "UNAVAILABLE", "etcdserver: leader changed")
ErrNotCapable = _error("ErrNotCapable", "UNAVAILABLE", "etcdserver: not capable")
ErrStopped = _error("ErrStopped", "UNAVAILABLE", "etcdserver: server stopped")
ErrTimeout = _error("ErrTimeout", "UNAVAILABLE", "etcdserver: request timed out")
ErrTimeoutDueToLeaderFail = _error("ErrTimeoutDueToLeaderFail", "UNAVAILABLE",
                                   "etcdserver: request timed out, possibly due to previous leader failure")
ErrUnhealthy = _error("ErrUnhealthy", "UNAVAILABLE", "etcdserver: unhealthy cluster")
ErrCorrupt = _error("ErrCorrupt", "DATA_LOSS", "etcdserver: corrupt cluster")
ErrNotSupportedForLearner = _error("ErrNotSupportedForLearner", "UNAVAILABLE",
                                   "etcdserver: rpc not supported for learner")
ErrBadLeaderTransferee = _error("ErrBadLeaderTransferee", "FAILED_PRECONDITION",
                                "etcdserver: bad leader transferee")
ErrTimeoutLeaderTransfer = _error("ErrTimeoutLeaderTransfer", "UNKNOWN",  # unmapped in etcd: code Unknown
                                  "etcdserver: request timed out, leader transfer took too long")
