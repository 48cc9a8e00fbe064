"""What every translating surface does with the core: submit one spec, wait for the job, and turn a job that
did not succeed into the FerrymanError the surface renders in its own error shape."""

from __future__ import annotations

from typing import Any

from ferryman import errors
from ferryman.identity import Principal
from ferryman.jobs import Job, JobService, JobSpec, JobState
from ferryman.types import Priority, Task

# backend error codes (docs/backends.md) that mean the request itself is at fault: the caller sees a 400
CALLER_FAULTS = frozenset({"unsupported", "invalid_input", "context_length_exceeded", "upstream_bad_request"})


def spec_for(
    principal: Principal,
    *,
    task: Task,
    model: str,
    payload: dict[str, Any],
    priority: Priority = Priority.INTERACTIVE,
    webhook_url: str | None = None,
) -> JobSpec:
    return JobSpec(
        org_id=principal.org_id,
        region=principal.region,
        task=task,
        model=model,
        priority=priority,
        payload=payload,
        webhook_url=webhook_url,
        weight=principal.weight,
    )


def failure_of(job: Job) -> errors.FerrymanError:
    """The error a client sees for a job that ended without success."""
    code, message = (job.error.code, job.error.message) if job.error else ("internal_error", "job failed")
    if job.state is JobState.CANCELLED:
        return errors.Conflict(f"job {job.id} was cancelled")
    if code == "storage_unavailable":  # its insert was refused (JobService.wait raises this for waiters)
        return errors.StorageUnavailable(f"job {job.id}: {message}", details={"retry_after_seconds": 2})
    if job.state is JobState.EXPIRED or code == "timeout":
        return errors.Timeout(f"job {job.id}: {message}")
    backend_code = message.partition(":")[0] if code == "worker_error" else code
    if backend_code in CALLER_FAULTS:
        return errors.InvalidRequest(message.partition(": ")[2] or message, details={"code": backend_code})
    return errors.WorkerFailed(f"job {job.id} failed: {message}", details={"code": backend_code})


async def settle(
    jobs: JobService, job: Job, *, wait_seconds: float
) -> tuple[Job, errors.FerrymanError | None]:
    """Wait for a submitted job: the job as it then is, and the error a client sees unless it succeeded
    (failure_of(job), or Timeout). Returned rather than raised, so a surface can say which job it was about."""
    if not job.state.is_terminal:
        job = await jobs.wait(job.org_id, job.id, wait_seconds)
    if not job.state.is_terminal:
        timeout = errors.Timeout(f"job {job.id} did not finish within {wait_seconds:g}s; it keeps running")
        return job, timeout
    if job.state is not JobState.SUCCEEDED:
        return job, failure_of(job)
    return job, None


async def read_blob(jobs: JobService, job: Job, name: str) -> tuple[str, bytes]:
    found = await jobs.read_blob(job.org_id, job.id, name)
    if found is None:
        raise errors.WorkerFailed(f"job {job.id} names output {name!r} but no such blob was stored")
    return found
