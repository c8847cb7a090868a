"""The peer transport: raft messages, snapshots and forwarded lease calls between members over
gRPC on --listen-peer-urls, with peer mutual TLS. Implements ``pyetcd.server.ports.PeerSender``
(injected by ``pyetcd.cli``); the server never imports it."""

from .transport import PeerTransport, fetch_remote_cluster

__all__ = ["PeerTransport", "fetch_remote_cluster"]
