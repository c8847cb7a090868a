"""Request checks etcd makes before anything is proposed (``v3rpc/key.go``)."""

from __future__ import annotations

from pyetcd import errors, wire
from pyetcd.api import rpc_pb2
from pyetcd.auth.store import MAX_NAME_BYTES

# The deepest Txn nesting whose InternalRequest (one level more, RequestOps in between) the
# apply thread can still decode (wire.MAX_DEPTH). etcd's default --max-txn-ops (128) refuses
# deeper ones first; with a larger --max-txn-ops etcd would accept more, pyetcd answers "too many".
MAX_TXN_NESTING = (wire.MAX_DEPTH - 2) // 2


_SORT_ORDERS = frozenset(rpc_pb2.RangeRequest.SortOrder.values())
_SORT_TARGETS = frozenset(rpc_pb2.RangeRequest.SortTarget.values())


def check_range(r: rpc_pb2.RangeRequest) -> None:
    if not r.key:
        raise errors.ErrEmptyKey()
    # etcd 3.5's check (3.4 has none: an unknown target made its sort call a nil sorter)
    if r.sort_order not in _SORT_ORDERS or r.sort_target not in _SORT_TARGETS:
        raise errors.ErrInvalidSortOption()


def check_auth_name(name: str) -> None:
    if len(name.encode()) > MAX_NAME_BYTES:
        raise errors.ErrAuthNameTooLong()


def check_put(r: rpc_pb2.PutRequest) -> None:
    if not r.key:
        raise errors.ErrEmptyKey()
    if r.ignore_value and r.value:
        raise errors.ErrValueProvided()
    if r.ignore_lease and r.lease:
        raise errors.ErrLeaseProvided()


def check_delete(r: rpc_pb2.DeleteRangeRequest) -> None:
    if not r.key:
        raise errors.ErrEmptyKey()


def check_txn(r: rpc_pb2.TxnRequest, max_txn_ops: int) -> None:
    _check_txn_ops(r, max_txn_ops)
    _check_intervals(r.success)
    _check_intervals(r.failure)


def _check_txn_ops(r: rpc_pb2.TxnRequest, max_txn_ops: int, depth: int = 1) -> None:
    opc = max(len(r.compare), len(r.success), len(r.failure))
    if opc > max_txn_ops or depth > MAX_TXN_NESTING:
        raise errors.ErrTooManyOps()
    for c in r.compare:
        if not c.key:
            raise errors.ErrEmptyKey()
    for op in list(r.success) + list(r.failure):
        kind = op.WhichOneof("request")
        if kind == "request_range":
            check_range(op.request_range)
        elif kind == "request_put":
            check_put(op.request_put)
        elif kind == "request_delete_range":
            check_delete(op.request_delete_range)
        elif kind == "request_txn":
            _check_txn_ops(op.request_txn, max_txn_ops - opc, depth + 1)
        else:
            raise errors.ErrKeyNotFound()  # an empty op, as etcd answers it


class _Deletes:
    """Deleted intervals [key, end), compared as etcd's string-affine intervals do."""

    def __init__(self) -> None:
        self.points: set[bytes] = set()
        self.ranges: list[tuple[bytes, bytes]] = []

    def add(self, d: rpc_pb2.DeleteRangeRequest) -> None:
        if d.range_end:
            self.ranges.append((d.key, d.range_end))
        else:
            self.points.add(d.key)

    def union(self, other: _Deletes) -> None:
        self.points |= other.points
        self.ranges.extend(other.ranges)

    def covers(self, key: bytes) -> bool:
        return key in self.points or any(lo <= key < hi for lo, hi in self.ranges)


def _check_intervals(ops: object) -> tuple[set[bytes], _Deletes]:
    """etcd's checkIntervals: no key may be put twice, or put and deleted, in one txn level."""
    reqs = list(ops)  # type: ignore[call-overload]
    dels = _Deletes()
    for op in reqs:
        if op.WhichOneof("request") == "request_delete_range":
            dels.add(op.request_delete_range)
    puts: set[bytes] = set()
    for op in reqs:
        if op.WhichOneof("request") != "request_txn":
            continue
        puts_then, dels_then = _check_intervals(op.request_txn.success)
        puts_else, dels_else = _check_intervals(op.request_txn.failure)
        for k in puts_then:
            if k in puts or dels.covers(k):
                raise errors.ErrDuplicateKey()
            puts.add(k)
        for k in puts_else:
            if (k in puts and k not in puts_then) or dels.covers(k):
                raise errors.ErrDuplicateKey()
            puts.add(k)
        dels.union(dels_then)
        dels.union(dels_else)
    for op in reqs:
        if op.WhichOneof("request") != "request_put":
            continue
        k = op.request_put.key
        if k in puts or dels.covers(k):
            raise errors.ErrDuplicateKey()
        puts.add(k)
    return puts, dels
