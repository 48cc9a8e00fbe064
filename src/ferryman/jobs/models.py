"""Jobs as the core sees them: the spec a surface hands in, the stored job, and the lifecycle's legal moves."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from ferryman.errors import InvalidTransition
from ferryman.types import JobId, OrgId, Priority, Region, Task


class JobState(StrEnum):
    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED})

NEXT_STATES: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.DISPATCHED, JobState.CANCELLED, JobState.EXPIRED, JobState.FAILED}),
    JobState.DISPATCHED: frozenset(
        {JobState.RUNNING, JobState.QUEUED, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
    ),
    JobState.RUNNING: frozenset({JobState.QUEUED, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
    JobState.EXPIRED: frozenset(),
}


def check_transition(current: JobState, to: JobState) -> None:
    """Raise InvalidTransition naming both states unless the lifecycle allows `current -> to`."""
    if to not in NEXT_STATES[current]:
        raise InvalidTransition(f"job cannot move {current} -> {to}")


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated request for work, the one shape every surface produces."""

    org_id: OrgId
    region: Region
    task: Task
    model: str
    priority: Priority
    payload: dict[str, Any]
    idempotency_key: str | None = None
    request_digest: str | None = None
    webhook_url: str | None = None
    deadline_seconds: float | None = None
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class JobFailure:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Timings:
    wait_ms: float | None = None
    worker_rtt_ms: float | None = None
    work_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Job:
    id: JobId
    org_id: OrgId
    region: Region
    task: Task
    model: str
    priority: Priority
    state: JobState
    created_at: float
    deadline_at: float
    attempts: int = 0
    fence: int = 0
    worker_id: str | None = None
    idempotency_key: str | None = None
    request_digest: str | None = None
    webhook_url: str | None = None
    result: dict[str, Any] | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    error: JobFailure | None = None
    crashed_workers: tuple[str, ...] = ()
    dispatched_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    timings: Timings = Timings()


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """Where a waiting job stands: shown to clients so they know why nothing happens yet."""

    position: int
    wait_reason: str | None
    estimated_start_seconds: float | None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    tasks: frozenset[Task]
    workers: int
    warm: bool  # a connected worker that is neither draining nor quarantined serves it
    quarantined: int = 0  # of `workers`, how many are quarantined


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry of a job's event stream (SSE): `status`, `progress`, `chunk` or `done`."""

    seq: int
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


class QueueClient(Protocol):
    """What the job service needs from a region's queue node (implemented by dispatch.QueueNode)."""

    def model_info(self, model: str) -> ModelInfo | None: ...

    def model_tasks(self, model: str) -> frozenset[Task] | None: ...

    def admit(self, *, model: str, priority: Priority) -> None: ...

    def enqueue(self, job: Job, payload: dict[str, Any], weight: float = 1.0) -> None: ...

    async def cancel(self, job_id: JobId) -> Job | None: ...

    def abandon(self, job_id: JobId, failure: JobFailure) -> bool: ...

    def outcome_unwritten(self, job_id: JobId) -> bool: ...

    def queue_info(self, job_id: JobId) -> QueueInfo | None: ...

    def live_job(self, job_id: JobId) -> Job | None: ...
