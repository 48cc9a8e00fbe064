"""Lease and deadline timers: a heap of (due, job id, token) checked lazily, so renewals cost a push at most."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator


class TimerHeap:
    def __init__(self) -> None:
        self._heap: list[tuple[float, str, int]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, job_id: str, token: int) -> None:
        heapq.heappush(self._heap, (due, job_id, token))

    def compact(self, keep: Callable[[str], bool]) -> None:
        """Drop entries of jobs that moved on: finished jobs would otherwise sit here until their due time."""
        self._heap = [entry for entry in self._heap if keep(entry[1])]
        heapq.heapify(self._heap)

    def pop_due(self, now: float) -> Iterator[tuple[float, str, int]]:
        """Entries due at `now`; the caller checks each still applies (the job may have moved on)."""
        while self._heap and self._heap[0][0] <= now:
            yield heapq.heappop(self._heap)
