"""A store commit put off past the answers it backs: the gate every store reader passes.

A client's answer needs its entry durable in the raft log, not in the store: after a crash the
node loop replays the log from what the store last applied (it keeps those entries until the
store holds them durably). etcd's backend commits the same way, in batches, every 100 ms. So
while a lone client is all there is, the node loop keeps the store's write transaction open
across turns and commits it later, and the store's fsync leaves the path of every request.

Until it commits nothing may read the store: a reader would miss what the published key index
and the answers already announce. ``settle`` is therefore called by every read of the store. On
the thread that began the write transaction (LMDB ties a write transaction to its thread) it
commits at once; any other thread asks that thread to commit, through the ``request`` given with
the commit, and waits until it has.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

# Runs a function on the thread that owns the pending commit, soon (not here and now).
Request = Callable[[Callable[[], None]], object]


class DeferredCommit:
    """At most one pending commit, and the threads waiting for it."""

    def __init__(self) -> None:
        self._commit: Callable[[], None] | None = None
        self._request: Request | None = None
        self._owner = 0
        self._done = threading.Event()
        self._done.set()
        self.reads_waited = 0  # reads that found a commit pending: the owner may stop deferring

    @property
    def pending(self) -> bool:
        return not self._done.is_set()

    def owned_here(self) -> bool:
        """Whether a commit is pending and this thread is the one that may make it."""
        return self.pending and self._owner == threading.get_ident()

    def defer(self, commit: Callable[[], None], request: Request) -> None:
        """Hold ``commit`` (it commits the write transaction this thread began) until ``settle``;
        ``request(fn)`` must run ``fn`` on this thread soon, for readers on other threads."""
        assert not self.pending or self.owned_here(), "a commit of another thread is pending"
        self._commit, self._request, self._owner = commit, request, threading.get_ident()
        self._done.clear()

    def take(self) -> None:
        """The owner goes on writing in the pending transaction: until the next ``defer``,
        ``settle`` does nothing on this thread (it would commit a transaction still being
        written), and other threads wait for that ``defer`` and the commit after it."""
        assert self.owned_here()
        self._commit = None

    def release(self) -> None:
        """The owner commits the transaction itself, later: nothing is pending any more."""
        assert not self.pending or self.owned_here()
        self._commit = None
        self._done.set()

    def settle(self) -> None:
        """Return once no commit is pending: commit here if this thread owns it, else have the
        owner commit and wait for it. (For readers: the owner itself calls ``flush``.)"""
        if self._done.is_set():
            return
        self.reads_waited += 1
        self.flush()

    def flush(self) -> None:
        """``settle``, without counting a reader."""
        if self._done.is_set():
            return
        if threading.get_ident() != self._owner:
            request = self._request
            if request is not None:
                request(self.flush)
            self._done.wait()
            return
        commit, self._commit = self._commit, None
        if commit is None:  # from inside the commit itself, or while the owner writes (``take``)
            return
        try:
            commit()
        finally:
            self._done.set()
