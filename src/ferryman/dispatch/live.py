"""A job while the queue node holds it: mutable, touched only from the node's event loop."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ferryman.jobs import Job, JobFailure, JobState, Timings

if TYPE_CHECKING:
    from ferryman.dispatch.registry import WorkerConn


@dataclass(slots=True, eq=False)
class LiveJob:
    job: Job
    payload: dict[str, Any]
    state: JobState
    deadline_mono: float
    enqueued_mono: float
    attempts: int = 0
    fence: int = 0
    weight: float = 1.0
    seq: int = 0
    worker: WorkerConn | None = None
    crashed: set[str] = field(default_factory=set)
    avoid: set[str] = field(default_factory=set)
    # workers it failed (retryably) or lapsed on: evidence against them once it succeeds elsewhere
    failed_on: set[str] = field(default_factory=set)
    # it failed on two different workers: the job's fault, so none of its failures count against a worker
    blamed: bool = False
    # queued in its model's retry lane, waiting for a worker it has not failed on
    retrying: bool = False
    lease_expires_mono: float = 0.0
    # the job as readers see it from its end until its outcome is committed
    pending: Job | None = None
    dispatched_mono: float = 0.0
    dispatched_at: float | None = None
    started_at: float | None = None

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def org_id(self) -> str:
        return self.job.org_id

    def snapshot(
        self,
        *,
        finished_at: float | None = None,
        result: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
        error: JobFailure | None = None,
        timings: Timings | None = None,
    ) -> Job:
        return replace(
            self.job,
            state=self.state,
            attempts=self.attempts,
            fence=self.fence,
            worker_id=self.worker.id if self.worker else self.job.worker_id,
            crashed_workers=tuple(sorted(self.crashed)),
            dispatched_at=self.dispatched_at,
            started_at=self.started_at,
            finished_at=finished_at,
            result=result,
            usage=usage or {},
            error=error,
            timings=timings or self.job.timings,
        )
