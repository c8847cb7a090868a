"""etcd's raft snapshot files, ``member/snap/<term>-<index>.snap``: snappb.Snapshot{crc 1,
data 2}, data being a raftpb.Snapshot{data 1, metadata 2} whose data is the v2 store as JSON —
where etcd 3.4 keeps the cluster's members (``/0/members/<hex id>/raftAttributes`` and
``/attributes``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crc32c

from .wal import WalError
from .wire import SnapshotMeta, WireError, bytes_field, snapshot_metadata, uint_field

_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")


@dataclass
class RaftSnapshot:
    meta: SnapshotMeta
    members: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> etcd's member JSON fields


def read_snap(path: Path) -> RaftSnapshot:
    raw = path.read_bytes()
    try:
        crc, data = uint_field(raw, 1), bytes_field(raw, 2)
        if crc32c.crc32c(data) != crc:
            raise WalError(f"{path}: crc mismatch: the snap file is damaged")
        meta = snapshot_metadata(bytes_field(data, 2))
        store = bytes_field(data, 1)
    except WireError as e:
        raise WalError(f"{path}: not a snap file: {e}") from e
    return RaftSnapshot(meta, _v2_members(store) if store else {})


def read_latest_snap(snap_dir: Path, at_most: int | None = None) -> RaftSnapshot | None:
    """The newest snap file (by index), at or below ``at_most`` if given; None when there is none."""
    found = sorted((int(m.group(2), 16), p) for p in snap_dir.iterdir() if (m := _NAME.match(p.name)))
    for index, path in reversed(found):
        if at_most is None or index <= at_most:
            return read_snap(path)
    return None


def _v2_members(store: bytes) -> dict[int, dict[str, Any]]:
    root = json.loads(store)["Root"]
    members_node = ((root.get("Children") or {}).get("0", {}).get("Children") or {}).get("members", {})
    out: dict[int, dict[str, Any]] = {}
    for hex_id, node in (members_node.get("Children") or {}).items():
        rec: dict[str, Any] = {"id": int(hex_id, 16)}
        for part in (node.get("Children") or {}).values():
            if part.get("Value"):
                rec.update(json.loads(part["Value"]))
        out[rec["id"]] = rec
    return out
