"""etcd's KV semantics on top of an MVCC view: range options, put/delete, txn compares.

The same code serves a serializable read (a view of the shared store), a read-only txn, and a
write txn being applied (a view that sees its own writes). Behaviour follows etcd's
``applierV3backend`` to the letter: when filters and sorting apply, how ``count`` and ``more``
are computed, which revision each nested response header carries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pyetcd import errors
from pyetcd.api import kv_pb2, rpc_pb2
from pyetcd.mvcc.store import RangeResult, normalize_end
from pyetcd.watch.encode import varint

RangeRequest = rpc_pb2.RangeRequest


class ReadView(Protocol):
    def range(self, key: bytes, end: bytes | None, rev: int = 0, limit: int = 0,
              count_only: bool = False) -> RangeResult: ...

    def read_rev(self) -> int: ...

    def first_rev(self) -> int: ...


class WriteView(ReadView, Protocol):
    def put(self, key: bytes, value: bytes, lease: int) -> int: ...

    def delete_range(self, key: bytes, end: bytes | None) -> tuple[int, int]: ...


@dataclass
class RangeReply:
    """A range result still holding serialized KeyValues: encoded without re-parsing them."""

    kvs: list[bytes]
    more: bool
    count: int
    revision: int

    def encode(self, header: rpc_pb2.ResponseHeader) -> bytes:
        head = rpc_pb2.RangeResponse(header=header, more=self.more, count=self.count).SerializeToString()
        parts = [head]
        for kv in self.kvs:
            parts.append(b"\x12" + varint(len(kv)) + kv)  # field 2 (kvs), length-delimited
        return b"".join(parts)

    def to_message(self) -> rpc_pb2.RangeResponse:
        resp = rpc_pb2.RangeResponse(more=self.more, count=self.count)
        resp.header.revision = self.revision
        for kv in self.kvs:
            resp.kvs.add().ParseFromString(kv)
        return resp


_SORT_KEYS: dict[int, Callable[[kv_pb2.KeyValue], object]] = {
    RangeRequest.KEY: lambda kv: kv.key,
    RangeRequest.VERSION: lambda kv: kv.version,
    RangeRequest.CREATE: lambda kv: kv.create_revision,
    RangeRequest.MOD: lambda kv: kv.mod_revision,
    RangeRequest.VALUE: lambda kv: kv.value,
}


def execute_range(view: ReadView, r: rpc_pb2.RangeRequest) -> RangeReply:
    filtered = bool(r.min_mod_revision or r.max_mod_revision or r.min_create_revision or r.max_create_revision)
    sort_order = r.sort_order
    if r.sort_target != RangeRequest.KEY and sort_order == RangeRequest.NONE:
        sort_order = RangeRequest.ASCEND  # etcd sorts ascending when only a target is given
    limit = r.limit
    if r.sort_order != RangeRequest.NONE or filtered:
        limit = 0  # fetch everything; sort and truncate afterwards
    if limit > 0:
        limit += 1  # one extra tells whether there is more
    rr = view.range(r.key, normalize_end(r.range_end), r.revision, limit, r.count_only)
    kvs = rr.kvs
    if filtered or sort_order != RangeRequest.NONE or r.keys_only:
        kvs = _filter_and_sort(kvs, r, sort_order)
    more = False
    if r.limit > 0 and len(kvs) > r.limit:
        kvs = kvs[: r.limit]
        more = True
    return RangeReply(kvs, more, rr.count, rr.rev)


def _filter_and_sort(raw: list[bytes], r: rpc_pb2.RangeRequest, sort_order: int) -> list[bytes]:
    kvs = [kv_pb2.KeyValue.FromString(b) for b in raw]
    if r.max_mod_revision:
        kvs = [kv for kv in kvs if kv.mod_revision <= r.max_mod_revision]
    if r.min_mod_revision:
        kvs = [kv for kv in kvs if kv.mod_revision >= r.min_mod_revision]
    if r.max_create_revision:
        kvs = [kv for kv in kvs if kv.create_revision <= r.max_create_revision]
    if r.min_create_revision:
        kvs = [kv for kv in kvs if kv.create_revision >= r.min_create_revision]
    if sort_order != RangeRequest.NONE:
        kvs.sort(key=_SORT_KEYS[r.sort_target], reverse=sort_order == RangeRequest.DESCEND)  # type: ignore[arg-type]
    if r.keys_only:
        for kv in kvs:
            kv.ClearField("value")
    return [kv.SerializeToString() for kv in kvs]


def execute_put(view: WriteView, p: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
    resp = rpc_pb2.PutResponse()
    value, lease = p.value, p.lease
    prev: kv_pb2.KeyValue | None = None
    if p.ignore_value or p.ignore_lease or p.prev_kv:
        rr = view.range(p.key, None)
        if rr.kvs:
            prev = kv_pb2.KeyValue.FromString(rr.kvs[0])
    if (p.ignore_value or p.ignore_lease) and prev is None:
        raise errors.ErrKeyNotFound()
    if p.ignore_value and prev is not None:
        value = prev.value
    if p.ignore_lease and prev is not None:
        lease = prev.lease
    if p.prev_kv and prev is not None:
        resp.prev_kv.CopyFrom(prev)
    resp.header.revision = view.put(p.key, value, lease)
    return resp


def execute_delete(view: WriteView, d: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
    resp = rpc_pb2.DeleteRangeResponse()
    end = normalize_end(d.range_end)
    if d.prev_kv:
        for raw in view.range(d.key, end).kvs:
            resp.prev_kvs.add().ParseFromString(raw)
    resp.deleted, resp.header.revision = view.delete_range(d.key, end)
    return resp


# ---- txn -------------------------------------------------------------------------------


def is_txn_read_only(t: rpc_pb2.TxnRequest) -> bool:
    for op in list(t.success) + list(t.failure):
        kind = op.WhichOneof("request")
        if kind in ("request_put", "request_delete_range"):
            return False
        if kind == "request_txn" and not is_txn_read_only(op.request_txn):
            return False
    return True


def txn_serializable(t: rpc_pb2.TxnRequest) -> bool:
    """A read-only txn is served locally only if every range in it asks to be serializable."""
    for op in list(t.success) + list(t.failure):
        kind = op.WhichOneof("request")
        if kind == "request_range" and not op.request_range.serializable:
            return False
        if kind == "request_txn" and not txn_serializable(op.request_txn):
            return False
    return True


def _cmp(a: bytes | int, b: bytes | int) -> int:
    return (a > b) - (a < b)  # type: ignore[operator]


def _compare_kv(c: rpc_pb2.Compare, kv: kv_pb2.KeyValue) -> bool:
    target = c.target
    if target == rpc_pb2.Compare.VALUE:
        result = _cmp(kv.value, c.value)
    elif target == rpc_pb2.Compare.CREATE:
        result = _cmp(kv.create_revision, c.create_revision)
    elif target == rpc_pb2.Compare.MOD:
        result = _cmp(kv.mod_revision, c.mod_revision)
    elif target == rpc_pb2.Compare.VERSION:
        result = _cmp(kv.version, c.version)
    elif target == rpc_pb2.Compare.LEASE:
        result = _cmp(kv.lease, c.lease)
    else:
        result = 0  # an unknown target compares as equal (etcd's compareKV leaves result 0)
    if c.result == rpc_pb2.Compare.EQUAL:
        return result == 0
    if c.result == rpc_pb2.Compare.NOT_EQUAL:
        return result != 0
    if c.result == rpc_pb2.Compare.GREATER:
        return result > 0
    if c.result == rpc_pb2.Compare.LESS:
        return result < 0
    return True


def _apply_compare(view: ReadView, c: rpc_pb2.Compare) -> bool:
    try:
        rr = view.range(c.key, normalize_end(c.range_end))
    except errors.EtcdError:
        return False
    if not rr.kvs:
        if c.target == rpc_pb2.Compare.VALUE:
            return False  # a missing key has no value to compare, not even an empty one
        return _compare_kv(c, kv_pb2.KeyValue())
    return all(_compare_kv(c, kv_pb2.KeyValue.FromString(raw)) for raw in rr.kvs)


def compare_path(view: ReadView, t: rpc_pb2.TxnRequest) -> list[bool]:
    """Which branch every (nested) txn takes, decided before anything is written."""
    ok = all(_apply_compare(view, c) for c in t.compare)
    path = [ok]
    for op in t.success if ok else t.failure:
        if op.WhichOneof("request") == "request_txn":
            path.extend(compare_path(view, op.request_txn))
    return path


LeaseCheck = Callable[[int], bool]


def _walk_branch(t: rpc_pb2.TxnRequest, path: list[bool], check: Callable[[rpc_pb2.RequestOp], None]) -> int:
    """Call ``check`` on every non-txn op of the branches ``path`` selects; returns txns consumed."""
    used = 0
    for op in t.success if path[0] else t.failure:
        if op.WhichOneof("request") == "request_txn":
            n = _walk_branch(op.request_txn, path[1:], check)
            used += n + 1
            path = path[n + 1:]
        else:
            check(op)
    return used


def check_txn(view: ReadView, t: rpc_pb2.TxnRequest, path: list[bool], lease_exists: LeaseCheck | None) -> None:
    """etcd's pre-checks on the branch taken, in etcd's order: first every put (a missing key
    for ignore_value/ignore_lease, an unknown lease), then every range's revision.

    ``lease_exists`` is None for a read-only txn, which has no put to check."""

    def check_put(op: rpc_pb2.RequestOp) -> None:
        if op.WhichOneof("request") != "request_put" or lease_exists is None:
            return
        p = op.request_put
        if (p.ignore_value or p.ignore_lease) and not view.range(p.key, None).kvs:
            raise errors.ErrKeyNotFound()
        if p.lease and not lease_exists(p.lease):
            raise errors.ErrLeaseNotFound()

    def check_range(op: rpc_pb2.RequestOp) -> None:
        if op.WhichOneof("request") != "request_range":
            return
        rev = op.request_range.revision
        if rev == 0:
            return
        if rev > view.read_rev():
            raise errors.ErrFutureRev()
        if rev < view.first_rev():
            raise errors.ErrCompacted()

    _walk_branch(t, path, check_put)
    _walk_branch(t, path, check_range)


def execute_txn_ops(view: WriteView | ReadView, t: rpc_pb2.TxnRequest, path: list[bool],
                    resp: rpc_pb2.TxnResponse) -> int:
    """Run the branch chosen by ``path`` into ``resp``; returns nested txns consumed."""
    resp.succeeded = path[0]
    used = 0
    for op in t.success if path[0] else t.failure:
        kind = op.WhichOneof("request")
        out = resp.responses.add()
        if kind == "request_range":
            reply = execute_range(view, op.request_range)
            out.response_range.CopyFrom(reply.to_message())
        elif kind == "request_put":
            out.response_put.CopyFrom(execute_put(view, op.request_put))  # type: ignore[arg-type]
        elif kind == "request_delete_range":
            out.response_delete_range.CopyFrom(execute_delete(view, op.request_delete_range))  # type: ignore[arg-type]
        elif kind == "request_txn":
            nested = out.response_txn
            nested.header.SetInParent()  # etcd sends nested txn headers empty
            n = execute_txn_ops(view, op.request_txn, path[1:], nested)
            used += n + 1
            path = path[n + 1:]
    return used
