"""Plain data shared by every part of the Raft core: entries, states, messages, errors.

Everything here is immutable or plain so that the transport can serialize it field by
field and the simulator can copy, duplicate and reorder it freely.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

NONE = 0
"""The id meaning "no node" (no leader, no vote)."""

# Bytes charged per entry on top of its data when sizing messages and in-flight windows,
# so that empty entries still cost something.
ENTRY_OVERHEAD = 16


class EntryType(enum.Enum):
    NORMAL = 0
    CONF_CHANGE = 1


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


def entry_size(e: Entry) -> int:
    """Approximate wire size of an entry, used by size limits and flow control."""
    return len(e.data) + ENTRY_OVERHEAD


def entries_size(ents: list[Entry] | tuple[Entry, ...]) -> int:
    return sum(len(e.data) for e in ents) + ENTRY_OVERHEAD * len(ents)


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it is sent."""

    term: int = 0
    vote: int = 0
    commit: int = 0

    def is_empty(self) -> bool:
        return self.term == 0 and self.vote == 0 and self.commit == 0


class StateType(enum.Enum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth telling the application about (who leads, our role)."""

    lead: int
    raft_state: StateType


@dataclass(frozen=True, slots=True)
class ConfState:
    """Membership: voters count for quorum, learners only receive the log."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    data: bytes = b""
    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)

    def is_empty(self) -> bool:
        return self.metadata.index == 0


class ConfChangeType(enum.Enum):
    ADD_NODE = 0
    REMOVE_NODE = 1
    ADD_LEARNER_NODE = 2


_CC_HEADER = struct.Struct(">BQ")


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One membership change; ADD_NODE of an existing learner promotes it."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""

    def encode(self) -> bytes:
        return _CC_HEADER.pack(self.type.value, self.node_id) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        if len(data) < _CC_HEADER.size:
            raise ValueError(f"conf change too short: {len(data)} bytes")
        t, node_id = _CC_HEADER.unpack_from(data)
        return cls(ConfChangeType(t), node_id, bytes(data[_CC_HEADER.size :]))


class MessageType(enum.Enum):
    MSG_HUP = 0
    MSG_BEAT = 1
    MSG_PROP = 2
    MSG_APP = 3
    MSG_APP_RESP = 4
    MSG_VOTE = 5
    MSG_VOTE_RESP = 6
    MSG_SNAP = 7
    MSG_HEARTBEAT = 8
    MSG_HEARTBEAT_RESP = 9
    MSG_UNREACHABLE = 10
    MSG_SNAP_STATUS = 11
    MSG_CHECK_QUORUM = 12
    MSG_TRANSFER_LEADER = 13
    MSG_TIMEOUT_NOW = 14
    MSG_READ_INDEX = 15
    MSG_READ_INDEX_RESP = 16
    MSG_PRE_VOTE = 17
    MSG_PRE_VOTE_RESP = 18
    # Not etcd's: a leader's log is durable up to `index`, with the voters it counts in `context`
    # (Config.stable_news).
    MSG_STABLE = 19


LOCAL_MESSAGES = frozenset(
    {
        MessageType.MSG_HUP,
        MessageType.MSG_BEAT,
        MessageType.MSG_UNREACHABLE,
        MessageType.MSG_SNAP_STATUS,
        MessageType.MSG_CHECK_QUORUM,
    }
)
"""Message types that only the node itself may generate; never accepted from the network."""


@dataclass(slots=True)
class Message:
    """A Raft message. Plain data: the transport serializes it field by field.

    The core never mutates a message it received, so a simulator may deliver one object
    several times.
    """

    type: MessageType = MessageType.MSG_HUP
    to: int = 0
    frm: int = 0
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


KNOWS_STABLE = b"S"
"""The context of a follower's append answer when it takes MSG_STABLE (Config.stable_news): a
leader sends it only to those, so a member of an older build is told the commit index as before."""


def encode_voters(voters: Iterable[int]) -> bytes:
    """A voter set as MSG_STABLE carries it: sorted ids, 8 bytes each."""
    return b"".join(v.to_bytes(8, "big") for v in sorted(voters))


def decode_voters(data: bytes) -> frozenset[int]:
    return frozenset(int.from_bytes(data[i : i + 8], "big") for i in range(0, len(data) - 7, 8))


def vote_response_type(t: MessageType) -> MessageType:
    if t is MessageType.MSG_VOTE:
        return MessageType.MSG_VOTE_RESP
    if t is MessageType.MSG_PRE_VOTE:
        return MessageType.MSG_PRE_VOTE_RESP
    raise ValueError(f"not a vote message: {t}")


@dataclass(frozen=True, slots=True)
class ReadState:
    """Answer to a ReadIndex request: reads may be served once `index` is applied."""

    index: int
    request_ctx: bytes


class RaftError(Exception):
    """Base class of the errors the core raises."""


class ProposalDroppedError(RaftError):
    """The proposal could not be accepted (no leader, leadership transfer, removed node)."""


class CompactedError(RaftError):
    """The requested index is older than the storage's first index (compacted away)."""


class UnavailableError(RaftError):
    """The requested index is beyond the storage's last index."""


class SnapshotOutOfDateError(RaftError):
    """A snapshot older than the one already held was offered."""


class SnapshotTemporarilyUnavailableError(RaftError):
    """The storage cannot produce a snapshot right now; the leader will retry later."""


class StepLocalMsgError(RaftError):
    """A local-only message type arrived through `step` from the network."""
