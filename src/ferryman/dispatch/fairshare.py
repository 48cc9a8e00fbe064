"""Weighted fair sharing between organizations inside one priority class (stride scheduling).

Each org with queued jobs has a `pass`; the org with the lowest pass goes next and its pass grows by 1/weight.
An org that was idle rejoins at the current virtual time, so it cannot bank credit while away, and an org with
10,000 queued jobs gets one turn per round like an org with one.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque

from ferryman.dispatch.live import LiveJob
from ferryman.jobs import JobState


class FairQueue:
    def __init__(self) -> None:
        self._orgs: dict[str, deque[LiveJob]] = {}
        self._passes: dict[str, float] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._tiebreak = itertools.count()
        self._vtime = 0.0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, job: LiveJob, *, front: bool = False) -> None:
        queue = self._orgs.get(job.org_id)
        if queue is None:
            queue = self._orgs[job.org_id] = deque()
            start = max(self._passes.get(job.org_id, 0.0), self._vtime)
            self._passes[job.org_id] = start
            heapq.heappush(self._heap, (start, next(self._tiebreak), job.org_id))
        # seq numbers a job within its org's queue, so position() can count the org's jobs ahead of it
        if front:
            job.seq = (queue[0].seq - 1) if queue else 0
            queue.appendleft(job)
        else:
            job.seq = (queue[-1].seq + 1) if queue else 0
            queue.append(job)
        self._size += 1

    def discard(self, job: LiveJob) -> None:
        """Count out a job that left the queue by another way (cancel, expiry); it is skipped lazily."""
        self._size -= 1

    def _head(self, queue: deque[LiveJob]) -> LiveJob | None:
        while queue and queue[0].state is not JobState.QUEUED:
            queue.popleft()
        return queue[0] if queue else None

    def peek(self) -> LiveJob | None:
        while self._heap:
            _, _, org = self._heap[0]
            head = self._head(self._orgs[org])
            if head is not None:
                return head
            heapq.heappop(self._heap)
            del self._orgs[org]
        return None

    def pop(self) -> LiveJob | None:
        head = self.peek()
        if head is None:
            return None
        pass_, _, org = self._heap[0]
        queue = self._orgs[org]
        queue.popleft()
        self._size -= 1
        self._vtime = pass_
        next_pass = pass_ + 1.0 / max(head.weight, 1e-6)
        self._passes[org] = next_pass
        if self._head(queue) is None:
            heapq.heappop(self._heap)
            del self._orgs[org]
        else:
            heapq.heapreplace(self._heap, (next_pass, next(self._tiebreak), org))
        return head

    def position(self, job: LiveJob) -> int:
        """Approximately how many jobs of this class go before `job` (0 = next)."""
        queue = self._orgs.get(job.org_id)
        head = self._head(queue) if queue else None
        if head is None:
            return 0
        index = max(0, job.seq - head.seq)
        others = sum(min(len(q), index + 1) for org, q in self._orgs.items() if org != job.org_id)
        return index + others


class ModelQueues:
    """The ready queues of one model: one FairQueue per priority class, served strictly by rank."""

    def __init__(self) -> None:
        self.classes: tuple[FairQueue, FairQueue, FairQueue] = (FairQueue(), FairQueue(), FairQueue())
        # re-queued jobs waiting for a worker they have not failed on, oldest first; outside fair sharing,
        # as a re-queued job goes to the front of its class anyway. Small: only failed or lapsed jobs enter.
        self.retrying: list[LiveJob] = []

    def __len__(self) -> int:
        return sum(len(q) for q in self.classes) + len(self.retrying)

    def push(self, job: LiveJob, *, front: bool = False) -> None:
        self.classes[job.job.priority.rank].push(job, front=front)

    def push_retry(self, job: LiveJob) -> None:
        job.retrying = True
        self.retrying.append(job)

    def take_retry(self, job: LiveJob) -> None:
        """Take a job out of the retry lane (to dispatch it, or because it left the queue)."""
        job.retrying = False
        self.retrying.remove(job)

    def discard(self, job: LiveJob) -> None:
        if job.retrying:
            self.take_retry(job)
        else:
            self.classes[job.job.priority.rank].discard(job)

    def depth(self, rank: int) -> int:
        """Jobs waiting in one class, retries included."""
        return len(self.classes[rank]) + sum(j.job.priority.rank == rank for j in self.retrying)

    def best(self) -> tuple[int, LiveJob] | None:
        """The rank and head of the highest non-empty class."""
        for rank, queue in enumerate(self.classes):
            if len(queue) and (head := queue.peek()) is not None:
                return rank, head
        return None

    def pop(self, rank: int) -> LiveJob | None:
        return self.classes[rank].pop()

    def position(self, job: LiveJob) -> int:
        if job.retrying:
            return 0
        rank = job.job.priority.rank
        return sum(len(q) for q in self.classes[:rank]) + self.classes[rank].position(job)
