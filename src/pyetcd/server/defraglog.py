"""The log lines around one defragmentation, with etcd 3.5's wording and fields
(mvcc/backend: "defragmenting" ... "finished defragmenting directory"), and progress between them."""

from __future__ import annotations

import logging

from pyetcd.storage.backend import Backend
from pyetcd.storage.progress import Progress


class DefragLog:
    """Logs the start now; ``progress`` goes to ``Backend.defrag_copy``; ``finished()`` after the swap."""

    def __init__(self, log: logging.Logger, backend: Backend) -> None:
        self.backend, self.path = backend, str(backend.path)
        self.before = backend.sizes()
        self.progress = Progress(log, "defragmenting", self.before.db_size_in_use, "copied-bytes",
                                 started="defragmenting", finished="finished defragmenting directory",
                                 start_fields={"path": self.path, "current-db-size-bytes": self.before.db_size,
                                               "current-db-size-in-use-bytes": self.before.db_size_in_use})

    def finished(self) -> None:
        after = self.backend.sizes()
        self.progress.finish(after.db_size_in_use, **{
            "path": self.path, "current-db-size-bytes-diff": after.db_size - self.before.db_size,
            "current-db-size-bytes": after.db_size, "current-db-size-in-use-bytes": after.db_size_in_use})
