"""A min-heap of lease expiry times with lazy deletion (etcd's LeaseExpiredNotifier).

Re-registering an id supersedes its earlier entry without searching the heap: stale
entries are skipped when they surface, so renewals cost O(log n).
"""

from __future__ import annotations

import heapq


class ExpiryQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._due: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._due)

    def register(self, lease_id: int, when: float) -> None:
        self._due[lease_id] = when
        heapq.heappush(self._heap, (when, lease_id))

    def unregister(self, lease_id: int) -> None:
        self._due.pop(lease_id, None)

    def clear(self) -> None:
        self._heap.clear()
        self._due.clear()

    def pop_due(self, now: float, limit: int) -> list[int]:
        """Up to ``limit`` ids whose time has come, earliest first; they leave the queue."""
        out: list[int] = []
        heap = self._heap
        while heap and len(out) < limit:
            when, lease_id = heap[0]
            if self._due.get(lease_id) != when:
                heapq.heappop(heap)  # superseded or unregistered
                continue
            if when > now:
                break
            heapq.heappop(heap)
            del self._due[lease_id]
            out.append(lease_id)
        if len(heap) > 64 and len(heap) > 4 * len(self._due):
            self._heap = [(w, i) for i, w in self._due.items()]
            heapq.heapify(self._heap)
        return out
