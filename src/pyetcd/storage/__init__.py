"""Durable storage: the LMDB environment, the raft log and hard state."""
