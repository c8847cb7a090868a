"""storage/deferred.py: a pending store commit is made by the thread that owns it, whoever asks."""

from __future__ import annotations

import threading
from collections.abc import Callable

from pyetcd.storage.deferred import DeferredCommit


class _Owner:
    """A thread that owns pending commits and runs what is requested of it, like the apply thread."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []
        self.wake = threading.Condition()
        self.ident = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.ident = threading.get_ident()
        while True:
            with self.wake:
                self.wake.wait_for(lambda: self.jobs or self.stop)
                if not self.jobs:
                    return
                job = self.jobs.pop(0)
            job()

    def request(self, fn: Callable[[], None]) -> None:
        with self.wake:
            self.jobs.append(fn)
            self.wake.notify()

    def run(self, fn: Callable[[], None]) -> None:
        done = threading.Event()
        self.request(lambda: (fn(), done.set()))
        assert done.wait(5)

    def close(self) -> None:
        with self.wake:
            self.stop = True
            self.wake.notify()
        self.thread.join(5)


def test_the_owner_commits_at_settle_and_nothing_is_pending_after() -> None:
    d = DeferredCommit()
    commits: list[int] = []
    d.defer(lambda: commits.append(threading.get_ident()), lambda fn: None)
    assert d.pending and d.owned_here()
    d.settle()
    assert commits == [threading.get_ident()] and not d.pending
    d.settle()
    assert len(commits) == 1


def test_another_thread_has_the_owner_commit_and_waits_for_it() -> None:
    owner, d = _Owner(), DeferredCommit()
    commits: list[int] = []
    try:
        owner.run(lambda: d.defer(lambda: commits.append(threading.get_ident()), owner.request))
        assert d.pending and not d.owned_here()
        d.settle()  # from this thread: the commit must still happen on the owner's
        assert commits == [owner.ident] and not d.pending
    finally:
        owner.close()


def test_while_the_owner_writes_it_does_not_commit_and_others_wait_for_its_next_defer() -> None:
    owner, d = _Owner(), DeferredCommit()
    commits: list[str] = []
    reader_done = threading.Event()
    try:
        owner.run(lambda: d.defer(lambda: commits.append("first"), owner.request))

        def write_turn() -> None:
            d.take()
            d.settle()  # the owner reading mid-turn must not commit a transaction being written
            assert commits == []
            reader = threading.Thread(target=lambda: (d.settle(), reader_done.set()))
            reader.start()
            assert not reader_done.wait(0.2)  # the reader waits for the turn
            d.defer(lambda: commits.append("second"), owner.request)

        owner.run(write_turn)
        assert reader_done.wait(5)
        assert commits == ["second"] and not d.pending
    finally:
        owner.close()


def test_reads_that_found_a_commit_pending_are_counted_and_the_owners_flushes_are_not() -> None:
    d = DeferredCommit()
    d.settle()
    d.defer(lambda: None, lambda fn: None)
    d.flush()
    assert d.reads_waited == 0 and not d.pending
    d.defer(lambda: None, lambda fn: None)
    d.settle()
    assert d.reads_waited == 1 and not d.pending


def test_release_leaves_nothing_pending() -> None:
    d = DeferredCommit()
    d.defer(lambda: (_ for _ in ()).throw(AssertionError("must not commit")), lambda fn: None)
    d.take()
    d.release()
    assert not d.pending
    d.settle()
