"""WatchResponse wire encoding, straight from stored ``mvccpb.KeyValue`` bytes.

Building protobuf objects costs far more than concatenating bytes (design.md), and one event
often goes to many watchers, so responses are assembled from pre-encoded parts. The output
parses as ``etcdserverpb.WatchResponse``; tests check that against the generated classes.
"""

from __future__ import annotations

from pyetcd.varint import encode_varint

from .watcher import DELETE

# field tags: (number << 3) | wire type
_HEADER, _WATCH_ID, _CREATED, _CANCELED = b"\x0a", b"\x10", b"\x18", b"\x20"
_COMPACT_REV, _CANCEL_REASON, _FRAGMENT, _EVENT = b"\x28", b"\x32", b"\x38", b"\x5a"
_EV_DELETE, _EV_KV, _EV_PREV = b"\x08\x01", b"\x12", b"\x1a"
varint = encode_varint  # (kvops and tests import it from here)


def _uint_field(tag: bytes, n: int) -> bytes:
    return tag + varint(n) if n else b""


def header(cluster_id: int, member_id: int, revision: int, raft_term: int) -> bytes:
    """A ResponseHeader as field 1 of a WatchResponse."""
    body = (_uint_field(b"\x08", cluster_id) + _uint_field(b"\x10", member_id)
            + _uint_field(b"\x18", revision) + _uint_field(b"\x20", raft_term))
    return _HEADER + varint(len(body)) + body


def event(event_type: int, kv: bytes, prev_kv: bytes | None = None) -> bytes:
    """One Event as field 11 of a WatchResponse."""
    body = (_EV_DELETE if event_type == DELETE else b"") + _EV_KV + varint(len(kv)) + kv
    if prev_kv is not None:
        body += _EV_PREV + varint(len(prev_kv)) + prev_kv
    return _EVENT + varint(len(body)) + body


def response(hdr: bytes, watch_id: int, *, created: bool = False, canceled: bool = False,
             compact_revision: int = 0, cancel_reason: str = "", fragment: bool = False,
             events: bytes = b"") -> bytes:
    """A WatchResponse from an encoded header and encoded events (fields in number order)."""
    parts = [hdr, _uint_field(_WATCH_ID, watch_id)]
    if created:
        parts.append(_CREATED + b"\x01")
    if canceled:
        parts.append(_CANCELED + b"\x01")
    parts.append(_uint_field(_COMPACT_REV, compact_revision))
    if cancel_reason:
        reason = cancel_reason.encode()
        parts.append(_CANCEL_REASON + varint(len(reason)) + reason)
    if fragment:
        parts.append(_FRAGMENT + b"\x01")
    parts.append(events)
    return b"".join(parts)


def fragments(hdr: bytes, watch_id: int, events: list[bytes], limit: int) -> list[bytes]:
    """etcd's sendFragments: split an event response of ``limit`` bytes or more into pieces
    that stay under it (each holds at least one event); all but the last have fragment=true."""
    whole = response(hdr, watch_id, events=b"".join(events))
    if len(whole) < limit or len(events) < 2:
        return [whole]
    base = len(response(hdr, watch_id, fragment=True))
    out: list[bytes] = []
    cur: list[bytes] = []
    size = base
    for ev in events:
        if cur and size + len(ev) >= limit:
            out.append(response(hdr, watch_id, fragment=True, events=b"".join(cur)))
            cur, size = [], base
        cur.append(ev)
        size += len(ev)
    out.append(response(hdr, watch_id, events=b"".join(cur)))
    return out
