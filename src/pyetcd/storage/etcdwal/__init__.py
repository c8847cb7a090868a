"""etcd's raft files, read without etcd: the write-ahead log (``member/wal/*.wal``) and the raft
snapshot files (``member/snap/*.snap``) that a stopped etcd, or ``etcdctl snapshot restore``,
leaves in a data dir. ``wire`` decodes the few protobuf messages involved (raftpb, walpb,
snappb) straight from the wire format, so no generated code of etcd's is needed.
"""

from .snap import RaftSnapshot, read_latest_snap
from .wal import WalContents, WalError, read_wal
from .wire import ConfChange, Entry

__all__ = ["ConfChange", "Entry", "RaftSnapshot", "WalContents", "WalError", "read_latest_snap", "read_wal"]
