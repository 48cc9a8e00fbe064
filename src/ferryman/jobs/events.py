"""Each live job's event stream, kept in memory so sync waits, SSE streams and resumption share one source.

Events get increasing sequence numbers per job; a client resuming with Last-Event-ID gets what it missed. A
finished job's stream stays replayable for a while, then only its durable final state remains (in the store).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ferryman.jobs.models import Job, JobEvent

MAX_EVENTS_PER_JOB = 20_000


@dataclass(slots=True)
class _Channel:
    events: list[JobEvent] = field(default_factory=list)
    waiter: asyncio.Event | None = None
    final: Job | None = None
    finished_mono: float | None = None
    dropped: int = 0


class JobEvents:
    def __init__(self) -> None:
        self._channels: dict[str, _Channel] = {}
        self._finished: deque[tuple[float, str]] = deque()  # in finishing order, so sweeping is O(expired)

    def open(self, job_id: str) -> None:
        self._channels.setdefault(job_id, _Channel())

    def publish(self, job_id: str, kind: str, data: dict[str, Any]) -> None:
        channel = self._channels.setdefault(job_id, _Channel())
        if channel.final is not None:
            return
        seq = channel.dropped + len(channel.events) + 1
        if len(channel.events) >= MAX_EVENTS_PER_JOB:
            channel.events.pop(0)
            channel.dropped += 1
        channel.events.append(JobEvent(seq, kind, data))
        self._wake(channel)

    def finish(self, job: Job, at_mono: float) -> None:
        """Publish the terminal `done` event (the Job itself is `final`); later publishes are ignored."""
        channel = self._channels.setdefault(job.id, _Channel())
        if channel.final is not None:
            return
        self.publish(job.id, "done", {"state": job.state.value})
        channel.final = job
        channel.finished_mono = at_mono
        self._finished.append((at_mono, job.id))
        self._wake(channel)

    @staticmethod
    def _wake(channel: _Channel) -> None:
        if channel.waiter is not None:
            channel.waiter.set()
            channel.waiter = None

    @staticmethod
    def _waiter(channel: _Channel) -> asyncio.Event:
        if channel.waiter is None:
            channel.waiter = asyncio.Event()
        return channel.waiter

    def final(self, job_id: str) -> Job | None:
        channel = self._channels.get(job_id)
        return channel.final if channel else None

    async def wait_final(self, job_id: str, timeout: float) -> Job | None:
        channel = self._channels.setdefault(job_id, _Channel())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while channel.final is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._waiter(channel).wait(), remaining)
            except TimeoutError:
                return None
        return channel.final

    def has(self, job_id: str) -> bool:
        return job_id in self._channels

    async def follow(self, job_id: str, after: int = 0) -> AsyncIterator[JobEvent]:
        """Yield events with seq > after, waiting for new ones, until the `done` event."""
        channel = self._channels.setdefault(job_id, _Channel())
        while True:
            waiter = self._waiter(channel)
            start = max(0, after - channel.dropped)
            for event in channel.events[start:]:
                after = event.seq
                yield event
                if event.kind == "done":
                    return
            if channel.final is not None:
                return
            await waiter.wait()

    def sweep(self, now_mono: float, retention_seconds: float) -> int:
        """Forget the streams of jobs finished longer ago than the retention; returns how many went."""
        swept = 0
        while self._finished and now_mono - self._finished[0][0] > retention_seconds:
            _, job_id = self._finished.popleft()
            if self._channels.pop(job_id, None) is not None:
                swept += 1
        return swept
