"""Protobuf varints, the one implementation: the watch encoder, the bounded decoder
(``pyetcd.wire``), etcd's WAL records and the embedded client's hand-written messages use it."""

from __future__ import annotations

_SMALL = [bytes((i,)) for i in range(128)]


class VarintError(ValueError):
    """Bytes that end inside a varint, or a varint longer than ten bytes."""


def encode_varint(n: int) -> bytes:
    """A varint; negative int64 values take ten bytes (two's complement), as protobuf writes them."""
    if 0 <= n < 128:
        return _SMALL[n]
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise VarintError("varint runs past the end of the message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise VarintError("varint longer than 10 bytes")
