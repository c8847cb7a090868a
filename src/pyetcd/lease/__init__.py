"""The lessor: leases granted, revoked and checkpointed through raft; kept alive and expired by
the leader alone (expiry becomes a LeaseRevoke proposal, so every member applies the same)."""

from .expiry import ExpiryQueue
from .ids import IdGenerator
from .lease import MAX_LEASE_TTL, Lease, min_lease_ttl
from .lessor import Lessor
from .revoker import Revoker

__all__ = ["MAX_LEASE_TTL", "ExpiryQueue", "IdGenerator", "Lease", "Lessor", "Revoker", "min_lease_ttl"]
