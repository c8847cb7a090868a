"""The few etcd calls the embedded member's keeper makes, encoded by hand on the wire.

Why not the generated stubs in ``pyetcd.api``: a test process that imports them registers
``rpc.proto`` and ``kv.proto`` in protobuf's default descriptor pool, and so do etcd client
libraries (aetcd, python-etcd3). Two registrations of the same file name fail at import, so
the fixture would break the very clients it is meant to serve. The messages needed here are
tiny (a key range, lease and user ids, a flag), so their bytes are written and read directly
and grpc sends them untouched (no serializer).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from pyetcd.varint import decode_varint, encode_varint

_VARINT, _LEN = 0, 2


_varint = encode_varint  # int64 fields (lease ids) are two's complement on the wire


def field_bytes(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(len(data)) + data


def field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3 | _VARINT) + _varint(value)


_read_varint = decode_varint


def fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a message: ints for varints, bytes for length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, kind = key >> 3, key & 7
        if kind == _VARINT:
            value, pos = _read_varint(buf, pos)
            yield number, value
        elif kind == _LEN:
            size, pos = _read_varint(buf, pos)
            yield number, buf[pos:pos + size]
            pos += size
        elif kind == 1:
            yield number, buf[pos:pos + 8]
            pos += 8
        elif kind == 5:
            yield number, buf[pos:pos + 4]
            pos += 4
        else:
            raise ValueError(f"unexpected protobuf wire type {kind}")


def repeated(buf: bytes, number: int) -> list[bytes]:
    return [v for n, v in fields(buf) if n == number and isinstance(v, bytes)]


def scalar(buf: bytes, number: int) -> int:
    return next((v for n, v in fields(buf) if n == number and isinstance(v, int)), 0)


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


class EtcdWire:
    """Raw unary calls on one channel: what a keeper needs to check and wipe a member."""

    def __init__(self, channel: grpc.Channel, timeout: float = 5.0) -> None:
        self._ch = channel
        self.timeout = timeout

    def call(self, method: str, request: bytes = b"", timeout: float | None = None) -> bytes:
        stub = self._ch.unary_unary(method, None, None)  # no (de)serializer: bytes as they are
        reply: bytes = stub(request, timeout=timeout or self.timeout)
        return reply

    def range_count(self, key: bytes, range_end: bytes = b"") -> int:
        """A linearizable count-only Range: answers only once the member has a leader and has applied."""
        req = field_bytes(1, key) + (field_bytes(2, range_end) if range_end else b"") + field_varint(9, 1)
        return scalar(self.call("/etcdserverpb.KV/Range", req), 4)

    def delete_all(self) -> int:
        """Delete every key (key ``\\0``, range_end ``\\0``): the keyspace is empty afterwards."""
        reply = self.call("/etcdserverpb.KV/DeleteRange", field_bytes(1, b"\0") + field_bytes(2, b"\0"))
        return scalar(reply, 2)

    def lease_ids(self) -> list[int]:
        reply = self.call("/etcdserverpb.Lease/LeaseLeases")
        return [_signed(scalar(status, 1)) for status in repeated(reply, 2)]

    def lease_revoke(self, lease_id: int) -> None:
        self.call("/etcdserverpb.Lease/LeaseRevoke", field_varint(1, lease_id))

    def auth_enabled(self) -> bool:
        return bool(scalar(self.call("/etcdserverpb.Auth/AuthStatus"), 2))

    def users(self) -> list[str]:
        return [u.decode() for u in repeated(self.call("/etcdserverpb.Auth/UserList"), 2)]

    def roles(self) -> list[str]:
        return [r.decode() for r in repeated(self.call("/etcdserverpb.Auth/RoleList"), 2)]

    def user_delete(self, name: str) -> None:
        self.call("/etcdserverpb.Auth/UserDelete", field_bytes(1, name.encode()))

    def role_delete(self, name: str) -> None:
        self.call("/etcdserverpb.Auth/RoleDelete", field_bytes(1, name.encode()))

    def alarms(self) -> int:
        """How many alarms are raised (AlarmRequest GET)."""
        return len(repeated(self.call("/etcdserverpb.Maintenance/Alarm", b""), 2))

    def member_count(self) -> int:
        return len(repeated(self.call("/etcdserverpb.Cluster/MemberList"), 2))
