"""Decode untrusted protobuf bytes without letting their nesting crash or stop the process.

Python's protobuf (upb) refuses messages nested deeper than 100 levels. Go's protobuf, which
etcd uses, has no such limit, so etcd answers a Txn nested 100 levels deep (200 message levels:
TxnRequest -> RequestOp -> TxnRequest ...). upb's only way past its limit is a process-wide
switch (``SetAllowOversizeProtos``) that raises it to 65,535, and at ~30,000 levels its recursive
decoder overflows the C stack (a segfault, measured). So: decode with the default limit; only
when that fails for depth, measure the depth with a small schema-aware walk of the wire bytes
and, if it is within ``MAX_DEPTH`` (and the bytes within ``MAX_DEEP_BYTES``), decode again with
the switch on. A lock keeps the switch from being on while another thread decodes untrusted bytes.

``MAX_DEPTH`` leaves room for the deepest Txn etcd accepts with its default --max-txn-ops (128
levels; the 129th is "too many operations") plus the InternalRequest that wraps it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from pyetcd.varint import VarintError, decode_varint

_set_oversize: Callable[[bool], None] | None
try:  # upb, the implementation protobuf >= 4 uses
    from google._upb._message import SetAllowOversizeProtos as _set_oversize
except ImportError:  # pragma: no cover - other implementations have their own limits
    _set_oversize = None

M = TypeVar("M", bound=Message)

MAX_DEPTH = 300  # message levels (Txn nesting 2 levels each); upb segfaults near 30,000
# The walk costs ~0.15 us per field in Python against upb's ~0.003: a request both deeper than
# 100 levels and large could hold the event loop ~200 ms (1.4 MB of tiny fields, measured). Deep
# requests are walked only up to this size (~10 ms at worst); larger deep ones are undecodable.
MAX_DEEP_BYTES = 64 * 1024
_lock = threading.Lock()


def parse(cls: type[M], data: bytes, max_deep_bytes: int = MAX_DEEP_BYTES) -> M:
    """``cls.FromString(data)``, accepting nesting up to MAX_DEPTH; DecodeError for anything else.

    ``max_deep_bytes``: the size up to which a message deeper than upb's limit is walked (a log
    entry wraps a client's request, so it gets a little more than the request had)."""
    with _lock:
        try:
            return cls.FromString(data)
        except DecodeError as e:
            if _set_oversize is None or "MaxDepth" not in str(e):
                raise
    if len(data) > max_deep_bytes:
        raise DecodeError(f"message nested more than 100 levels deep and larger than {max_deep_bytes} bytes")
    if wire_depth(cls.DESCRIPTOR, data, MAX_DEPTH) > MAX_DEPTH:
        raise DecodeError(f"message nested more than {MAX_DEPTH} levels deep")
    with _lock:
        _set_oversize(True)
        try:
            return cls.FromString(data)
        finally:
            _set_oversize(False)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    try:
        return decode_varint(data, pos)
    except VarintError as e:
        raise DecodeError(f"truncated varint: {e}") from e


def wire_depth(desc: Any, data: bytes, limit: int) -> int:
    """The deepest message (or group) nesting in ``data`` read as ``desc``; stops counting past ``limit``.

    Iterative (a stack of (descriptor, end offset)), so hostile depth cannot exhaust Python's stack.
    Length-delimited fields that are not message fields (bytes, strings, unknown fields) are skipped
    as upb skips them; start/end group markers count as a level, as upb's skipping of them does."""
    stack: list[tuple[Descriptor | None, int]] = [(desc, len(data))]
    pos, deepest = 0, 1
    while stack:
        cur, end = stack[-1]
        if pos >= end:
            stack.pop()
            pos = end
            continue
        key, pos = _varint(data, pos)
        number, wtype = key >> 3, key & 7
        if wtype == 0:
            _, pos = _varint(data, pos)
        elif wtype == 1:
            pos += 8
        elif wtype == 5:
            pos += 4
        elif wtype == 2:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise DecodeError("truncated length-delimited field")
            field = cur.fields_by_number.get(number) if cur is not None else None
            if field is not None and field.type == FieldDescriptor.TYPE_MESSAGE:
                stack.append((field.message_type, pos + size))
                deepest = max(deepest, len(stack))
                if deepest > limit:
                    return deepest
                continue
            pos += size
        elif wtype == 3:  # a group: nested until its end marker (never in etcd's protos)
            stack.append((None, end))
            deepest = max(deepest, len(stack))
            if deepest > limit:
                return deepest
        elif wtype == 4:
            if len(stack) < 2 or stack[-1][0] is not None:
                raise DecodeError("unexpected end-group marker")
            stack.pop()
        else:
            raise DecodeError(f"invalid wire type {wtype}")
    return deepest
