"""What the queue node tells an autoscaler: events as they happen (NodeObserver) and its fleet now (FleetSnapshot).

The node calls observers synchronously from its event loop, so an observer must be quick and must not await or
raise; the node knows nothing of policies or providers. Snapshots are built on request (every few seconds),
never kept up to date on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ferryman.jobs import Job
from ferryman.types import Priority, Region


class NodeObserver(Protocol):
    """Told about arrivals and outcomes. Called inline by the node: no I/O, no awaits, no exceptions."""

    def job_queued(self, job: Job, payload: dict[str, Any], at_mono: float) -> None:
        """A new job entered the queue (not a re-queue after a lapse or a crash)."""
        ...

    def job_finished(self, job: Job, at_mono: float) -> None:
        """A job reached a terminal state and it is committed; `job.usage` and `job.timings` are final. Called
        as a completion observer (`jobs.Completions`), after the ones the container put first."""
        ...


@dataclass(frozen=True, slots=True)
class WorkerSnapshot:
    """One connected worker serving the model. `in_service` is false once it drains, pauses or is quarantined."""

    worker_id: str
    slots: int
    busy_slots: int
    in_service: bool
    connected_mono: float
    quarantined: bool = False  # failed jobs that then succeeded elsewhere, repeatedly (docs/jobs.md)


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """The queue and the workers of one model in one region at `at_mono` (the node's monotonic clock).

    A worker's `connected_mono` is when it registered: the end of its provisioning.
    `head_enqueued_mono` is when the job next in line (by priority class, then fair share) was queued: its age
    is how long the queue has made someone wait. None when nothing is queued.
    """

    region: Region
    model: str
    at_mono: float
    depth: dict[Priority, int]
    head_enqueued_mono: float | None
    workers: tuple[WorkerSnapshot, ...]

    @property
    def queue_depth(self) -> int:
        return sum(self.depth.values())

    @property
    def oldest_job_age_s(self) -> float:
        return 0.0 if self.head_enqueued_mono is None else max(0.0, self.at_mono - self.head_enqueued_mono)
