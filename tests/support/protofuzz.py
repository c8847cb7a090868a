"""Hypothesis strategies for etcd's gRPC requests, built from the protobuf descriptors.

Valid requests: every field of the method's request type may be set, with values biased
towards a few shared keys (so requests meet each other's keys) and edge values; enum fields
also take numbers outside their enum (proto3 enums are open). Then the shapes a hostile
client sends: Txns nested deep, huge repeated fields, and the bytes of a valid request
mutated (bits flipped, truncated, spliced, or plain garbage).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import symbol_database
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from pyetcd.api import rpc_pb2, v3election_pb2, v3lock_pb2
from pyetcd.varint import encode_varint

_db = symbol_database.Default()
KEYS = [b"", b"\x00", b"fz/a", b"fz/b", b"fz/c", b"fz0", b"\xff"]
NAMES = ["", "root", "fz-user", "fz-role", "\x00"]
T = FieldDescriptor


@dataclass(frozen=True)
class Method:
    service: str  # full name, e.g. etcdserverpb.KV
    name: str
    request: type[Message]
    client_streaming: bool
    server_streaming: bool

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"

    @property
    def id(self) -> str:
        return f"{self.service.rsplit('.', 1)[-1]}.{self.name}"


def all_methods() -> list[Method]:
    """Every method of every client-facing etcd service (KV ... Lock, Election)."""
    out = []
    for fd in (rpc_pb2.DESCRIPTOR, v3lock_pb2.DESCRIPTOR, v3election_pb2.DESCRIPTOR):
        for svc in fd.services_by_name.values():
            for m in svc.methods:
                out.append(_method(svc.full_name, m))
    return out


def _method(service: str, m: MethodDescriptor) -> Method:
    return Method(service, m.name, _db.GetSymbol(m.input_type.full_name), m.client_streaming,
                  m.server_streaming)


def _ints(bits: int, signed: bool) -> st.SearchStrategy[int]:
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return st.one_of(st.sampled_from([v for v in (0, 1, -1, 2, 100, lo, hi) if lo <= v <= hi]),
                     st.integers(lo, hi))


_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    T.TYPE_INT64: _ints(64, True), T.TYPE_SINT64: _ints(64, True), T.TYPE_SFIXED64: _ints(64, True),
    T.TYPE_UINT64: _ints(64, False), T.TYPE_FIXED64: _ints(64, False),
    T.TYPE_INT32: _ints(32, True), T.TYPE_SINT32: _ints(32, True), T.TYPE_SFIXED32: _ints(32, True),
    T.TYPE_UINT32: _ints(32, False), T.TYPE_FIXED32: _ints(32, False),
    T.TYPE_BOOL: st.booleans(),
    T.TYPE_DOUBLE: st.floats(), T.TYPE_FLOAT: st.floats(width=32),
    T.TYPE_BYTES: st.one_of(st.sampled_from(KEYS), st.binary(max_size=24)),
    T.TYPE_STRING: st.one_of(st.sampled_from(NAMES), st.text(max_size=12)),
}


def _value(f: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if f.type == T.TYPE_MESSAGE:
        return messages(_db.GetSymbol(f.message_type.full_name), depth + 1)
    if f.type == T.TYPE_ENUM:
        known = [v.number for v in f.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 70))  # in and out of range
    return _SCALARS[f.type]


def messages(cls: type[Message], depth: int = 0, max_depth: int = 3) -> st.SearchStrategy[Message]:
    """Any message of ``cls``: each field set or not, at most one member of each oneof."""
    desc = cls.DESCRIPTOR

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Message:
        msg = cls()
        in_oneof = {f.name for o in desc.oneofs for f in o.fields}
        for o in desc.oneofs:
            choices = [f for f in o.fields if f.type != T.TYPE_MESSAGE or depth < max_depth]
            f = draw(st.sampled_from([None, *choices]))
            if f is not None:
                _set(msg, f, draw(_value(f, depth)))
        for f in desc.fields:
            if f.name in in_oneof or (f.type == T.TYPE_MESSAGE and depth >= max_depth):
                continue
            if not draw(st.booleans()):
                continue
            if f.is_repeated:
                _extend(msg, f, draw(st.lists(_value(f, depth), max_size=4)))
            else:
                _set(msg, f, draw(_value(f, depth)))
        return msg

    return build()


def _set(msg: Message, f: FieldDescriptor, value: Any) -> None:
    if f.type == T.TYPE_MESSAGE:
        getattr(msg, f.name).CopyFrom(value)
    else:
        setattr(msg, f.name, value)


def _extend(msg: Message, f: FieldDescriptor, values: list[Any]) -> None:
    field = getattr(msg, f.name)
    for v in values:
        if f.type == T.TYPE_MESSAGE:
            field.add().CopyFrom(v)
        else:
            field.append(v)


def nested_txn(depth: int, leaf: Message | None = None) -> bytes:
    """A Txn nested ``depth`` levels (success -> request_txn -> ...), encoded directly: building it
    as Python messages would re-parse it within upb's 100-level limit."""
    inner = rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(
        request_put=leaf or rpc_pb2.PutRequest(key=b"fz/deep", value=b"v"))]).SerializeToString()
    for _ in range(depth - 1):
        inner = length_delimited(2, length_delimited(4, inner))  # TxnRequest.success (2) -> RequestOp.request_txn (4)
    return inner


varint = encode_varint


def length_delimited(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def huge_repeated(method: Method) -> st.SearchStrategy[bytes]:
    """The method's request with one repeated field (or, lacking one, a bytes field) made huge."""
    desc = method.request.DESCRIPTOR
    repeated = [f for f in desc.fields if f.is_repeated]
    big = [f for f in desc.fields if f.type in (T.TYPE_BYTES, T.TYPE_STRING)]

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> bytes:
        base = draw(messages(method.request, max_depth=1))
        data = base.SerializeToString()
        if repeated:
            f = draw(st.sampled_from(repeated))
            count = draw(st.sampled_from([129, 1000, 20000]))
            one = draw(messages(_db.GetSymbol(f.message_type.full_name), max_depth=1)).SerializeToString() \
                if f.type == T.TYPE_MESSAGE else b""
            item = length_delimited(f.number, one) if f.type in (T.TYPE_MESSAGE, T.TYPE_BYTES, T.TYPE_STRING) \
                else varint(f.number << 3) + b"\x01"
            return data + item * count
        if big:
            f = draw(st.sampled_from(big))
            size = draw(st.sampled_from([600 * 1024, 1600 * 1024, 3 * 1024 * 1024]))
            return data + length_delimited(f.number, b"x" * size)
        return data

    return build()


@st.composite
def mutated(draw: Callable[[st.SearchStrategy[Any]], Any], valid: bytes) -> bytes:
    """``valid`` damaged the way a broken or hostile client damages bytes."""
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "splice", "garbage"]))
    if kind == "garbage" or not valid:
        return bytes(draw(st.binary(min_size=1, max_size=64)))
    i = draw(st.integers(0, len(valid) - 1))
    if kind == "flip":
        return valid[:i] + bytes([valid[i] ^ draw(st.integers(1, 255))]) + valid[i + 1:]
    if kind == "truncate":
        return valid[:i]
    if kind == "insert":
        return valid[:i] + draw(st.binary(min_size=1, max_size=8)) + valid[i:]
    j = draw(st.integers(0, len(valid)))
    return valid[:i] + valid[j:] + valid[i:j]


class Blob(bytes):
    """Request bytes whose repr stays short in failure reports (some are megabytes)."""

    def __repr__(self) -> str:
        head = bytes(self[:120])
        return f"Blob({head!r}{' ...' if len(self) > 120 else ''}, {len(self)} bytes)"


def requests(method: Method) -> st.SearchStrategy[Blob]:
    """Encoded requests for ``method``: valid, mutated, huge, and (for Txn) nested deep."""
    valid = messages(method.request).map(lambda m: m.SerializeToString())
    options = [valid, valid.flatmap(mutated), huge_repeated(method)]
    if method.name == "Txn":
        options.append(st.integers(1, 200).map(nested_txn))
    return st.one_of(*options).map(Blob)
