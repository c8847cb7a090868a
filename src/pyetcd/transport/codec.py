"""Raft messages <-> the peer protocol (proto/peer.proto), field for field."""

from __future__ import annotations

from pyetcd.api import peer_pb2
from pyetcd.raft import ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata


def encode(m: Message) -> peer_pb2.RaftMessage:
    out = peer_pb2.RaftMessage(type=m.type.value, to=m.to, term=m.term, log_term=m.log_term,
                               index=m.index, commit=m.commit, reject=m.reject, reject_hint=m.reject_hint,
                               context=m.context)
    setattr(out, "from", m.frm)  # a Python keyword
    if m.entries:
        out.entries.extend(peer_pb2.Entry(term=e.term, index=e.index, type=e.type.value, data=e.data)
                           for e in m.entries)
    if m.snapshot is not None:
        meta = m.snapshot.metadata
        out.has_snapshot = True
        out.snapshot.CopyFrom(peer_pb2.SnapshotMeta(index=meta.index, term=meta.term,
                                                    voters=list(meta.conf_state.voters),
                                                    learners=list(meta.conf_state.learners)))
    return out


def decode(p: peer_pb2.RaftMessage) -> Message:
    """Raises ValueError on a message type or entry type that does not exist."""
    snapshot = None
    if p.has_snapshot:
        s = p.snapshot
        snapshot = Snapshot(b"", SnapshotMetadata(s.index, s.term, ConfState(tuple(s.voters), tuple(s.learners))))
    return Message(type=MessageType(p.type), to=p.to, frm=getattr(p, "from"), term=p.term, log_term=p.log_term,
                   index=p.index, entries=tuple(Entry(e.term, e.index, EntryType(e.type), e.data) for e in p.entries),
                   commit=p.commit, snapshot=snapshot, reject=p.reject, reject_hint=p.reject_hint,
                   context=p.context)
