"""Apply committed proposals to the state machine: the key space, leases, alarms.

Runs on the apply thread, inside the batch's LMDB write transaction. Every member applies the
same entries in the same order and gets the same result: nothing here reads a clock.

Applying a committed entry never raises, whatever bytes it holds: every member would meet the
same entry, again on every restart, so an exception here would stop the cluster for good.
Limits are checked before a proposal (rpc/validate.py); an entry that is undecodable anyway or
trips a bug answers its client with an error and the member goes on.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from pyetcd import errors, wire
from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.raft import ConfChange

from . import kvops
from .batch import AppliedResult, ApplyBatch

log = logging.getLogger("pyetcd.server.apply")
# an entry is the client's request plus the InternalRequest header (id, user name, auth revision)
ENTRY_MAX_DEEP_BYTES = wire.MAX_DEEP_BYTES + 2048


def decode_conf_change(data: bytes) -> tuple[ConfChange, internal_pb2.ConfChangeContext] | None:
    """A committed conf change entry and its context, or None (logged once) when the bytes do
    not decode: skipped, as an undecodable normal entry is, rather than stopping apply."""
    try:
        cc = ConfChange.decode(data)
        return cc, wire.parse(internal_pb2.ConfChangeContext, cc.context)
    except Exception as e:
        log.error("skipping a committed conf change: cannot decode %d bytes (%s)", len(data), e)
        return None


class LeaseApplier(Protocol):
    """What the applier needs from the lessor (``pyetcd.lease``)."""

    def exists(self, batch: ApplyBatch, lease_id: int) -> bool: ...

    def grant(self, batch: ApplyBatch, r: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse: ...

    def revoke(self, batch: ApplyBatch, r: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse: ...

    def checkpoint(self, batch: ApplyBatch, r: rpc_pb2.LeaseCheckpointRequest) -> rpc_pb2.LeaseCheckpointResponse: ...


class NoLeases:
    """The lessor of a server without lease support: every lease id is unknown, as in etcd
    when no lease was granted."""

    def exists(self, batch: ApplyBatch, lease_id: int) -> bool:
        return False

    def grant(self, batch: ApplyBatch, r: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        raise errors.ErrNotCapable()

    def revoke(self, batch: ApplyBatch, r: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        raise errors.ErrLeaseNotFound()

    def checkpoint(self, batch: ApplyBatch, r: rpc_pb2.LeaseCheckpointRequest) -> rpc_pb2.LeaseCheckpointResponse:
        return rpc_pb2.LeaseCheckpointResponse()


class Applier:
    """Dispatches each InternalRequest to the subsystem that applies it."""

    def __init__(self, lessor: LeaseApplier | None = None) -> None:
        self.lessor: LeaseApplier = lessor or NoLeases()
        self.extra: dict[str, Any] = {}  # request kind -> callable(batch, request), for other subsystems
        self.guards: list[Any] = []  # callables(request) that may refuse a request before it applies

    def register(self, kind: str, handler: Any) -> None:
        """Let a subsystem (auth, alarms, membership) apply its own request kind."""
        self.extra[kind] = handler

    def apply_entry(self, batch: ApplyBatch, data: bytes) -> AppliedResult:
        """Decode and apply one committed entry; never raises (see the module docstring).

        An entry that cannot be decoded changes nothing and is logged once (its request id is
        unknown, so its client times out, as for a lost proposal). A request that fails in an
        unexpected way (a bug) is logged with its traceback and answered with an error; what it
        wrote before failing stays, the same on every member, since they all fail alike."""
        try:
            req = wire.parse(internal_pb2.InternalRequest, data, ENTRY_MAX_DEEP_BYTES)
        except Exception as e:
            log.error("skipping committed entry %d: cannot decode %d bytes (%s)", batch.entry_index, len(data), e)
            return AppliedResult(0, error=errors.EtcdError(f"etcdserver: undecodable entry: {e}"))
        result = AppliedResult(req.header.ID)
        try:
            result.response = self.apply(batch, req)
        except errors.EtcdError as e:
            result.error = e
        except Exception as e:
            log.exception("applying entry %d (%s) failed", batch.entry_index, req.WhichOneof("request"))
            result.error = errors.EtcdError(f"etcdserver: apply failed: {type(e).__name__}")
        return result

    def apply(self, batch: ApplyBatch, req: internal_pb2.InternalRequest) -> Any:
        for guard in self.guards:
            guard(req)
        kind = req.WhichOneof("request")
        if kind == "put":
            return self.put(batch, req.put)
        if kind == "delete_range":
            return self.delete_range(batch, req.delete_range)
        if kind == "txn":
            return self.txn(batch, req.txn)
        if kind == "compaction":
            return self.compaction(batch, req.compaction)
        if kind == "lease_grant":
            return self.lessor.grant(batch, req.lease_grant)
        if kind == "lease_revoke":
            return self.lessor.revoke(batch, req.lease_revoke)
        if kind == "lease_checkpoint":
            return self.lessor.checkpoint(batch, req.lease_checkpoint)
        handler = self.extra.get(kind or "")
        if handler is None:
            raise errors.ErrNotCapable(f"etcdserver: request {kind} is not supported")
        return handler(batch, getattr(req, kind or ""))

    def put(self, batch: ApplyBatch, p: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        if p.lease and not self.lessor.exists(batch, p.lease):
            raise errors.ErrLeaseNotFound()
        with batch.kv.etcd_txn() as txn:
            return kvops.execute_put(txn, p)

    def delete_range(self, batch: ApplyBatch, d: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        with batch.kv.etcd_txn() as txn:
            return kvops.execute_delete(txn, d)

    def txn(self, batch: ApplyBatch, t: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        with batch.kv.etcd_txn() as txn:
            path = kvops.compare_path(txn, t)
            kvops.check_txn(txn, t, path, lambda lease: self.lessor.exists(batch, lease))
            resp = rpc_pb2.TxnResponse()
            kvops.execute_txn_ops(txn, t, path, resp)
            resp.header.revision = txn.read_rev()
            return resp

    def compaction(self, batch: ApplyBatch, c: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        resp = rpc_pb2.CompactionResponse()
        resp.header.revision = batch.kv.compact(c.revision)
        return resp
