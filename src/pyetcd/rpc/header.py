"""etcd's ``header.fill`` for responses built below the rpc layer."""

from __future__ import annotations

from pyetcd.api import rpc_pb2
from pyetcd.server.server import EtcdServer


def fill_header(s: EtcdServer, h: rpc_pb2.ResponseHeader) -> rpc_pb2.ResponseHeader:
    """Cluster and member ids and the term always; the revision only where none was set."""
    h.MergeFrom(s.header(h.revision or None))
    return h
