"""pyetcd's Raft consensus core: a pure, deterministic state machine (no I/O, clocks or threads).

Messages and ticks go in (`RawNode.step`, `RawNode.tick`, `propose`, `read_index`, ...);
entries to persist, messages to send and committed entries to apply come out in a
`Ready`.  The contract (see `raw_node`): persist the Ready's snapshot, entries and hard
state (fsync when `must_sync`) BEFORE sending its messages; then apply its committed
entries; then call `advance(rd)`.
"""

from .config import Config
from .progress import Inflights, Progress, ProgressState
from .raw_node import RawNode, Ready, Status
from .storage import MemoryStorage, Storage
from .types import (
    NONE,
    CompactedError,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProposalDroppedError,
    RaftError,
    ReadState,
    Snapshot,
    SnapshotMetadata,
    SnapshotOutOfDateError,
    SnapshotTemporarilyUnavailableError,
    SoftState,
    StateType,
    StepLocalMsgError,
    UnavailableError,
)

__all__ = [
    "NONE",
    "CompactedError",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Config",
    "Entry",
    "EntryType",
    "HardState",
    "Inflights",
    "MemoryStorage",
    "Message",
    "MessageType",
    "Progress",
    "ProgressState",
    "ProposalDroppedError",
    "RaftError",
    "RawNode",
    "ReadState",
    "Ready",
    "Snapshot",
    "SnapshotMetadata",
    "SnapshotOutOfDateError",
    "SnapshotTemporarilyUnavailableError",
    "SoftState",
    "StateType",
    "Status",
    "StepLocalMsgError",
    "Storage",
    "UnavailableError",
]
