"""The `Server-Timing` header every job response carries: where a job's time went, and which job it was."""

from __future__ import annotations

import time

from starlette.requests import Request

from ferryman.api.outcomes import settle
from ferryman.jobs import Job, JobService, JobSpec


def server_timing(job: Job, *, handler_ms: float, waited_here: bool) -> str:
    """`queue-overhead` is the platform's own share: the handler's time less the parts spent elsewhere."""
    wait = job.timings.wait_ms or 0.0
    rtt = job.timings.worker_rtt_ms or 0.0
    work = job.timings.work_ms or 0.0
    overhead = max(0.0, handler_ms - wait - rtt - work) if waited_here else handler_ms
    return (
        f"queue-overhead;dur={overhead:.3f}, wait;dur={wait:.3f}, worker-rtt;dur={rtt:.3f}, "
        f"work;dur={work:.3f}"
    )


def elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def job_headers(job: Job, *, started: float, waited_here: bool, id_header: str) -> dict[str, str]:
    """Server-Timing and the job id under the name the surface's SDK reads (`x-request-id`, `request-id`…).
    `started` is the handler's `time.perf_counter()` on entry; `waited_here` when the handler waited for the
    job's end, so the job's own parts are subtracted from its time."""
    timing = server_timing(job, handler_ms=elapsed_ms(started), waited_here=waited_here)
    return {"Server-Timing": timing, id_header: job.id}


def stream_headers(job: Job, *, started: float, id_header: str) -> dict[str, str]:
    """A stream's headers leave before its first token, when only the platform's part so far is known:
    `queue-overhead` (the handler's time up to the stream's start) and `wait` once the job was dispatched.
    worker-rtt and work are not known yet; they are in the job's `timings` (GET /v1/jobs/{id})."""
    parts = [f"queue-overhead;dur={elapsed_ms(started):.3f}"]
    if job.timings.wait_ms is not None:
        parts.append(f"wait;dur={job.timings.wait_ms:.3f}")
    return {"Server-Timing": ", ".join(parts), id_header: job.id}


async def run_timed(
    request: Request, jobs: JobService, spec: JobSpec, *, started: float, id_header: str
) -> Job:
    """Submit and wait; returns the succeeded job, raises the submit errors, failure_of(job) or Timeout. The
    settled job's headers are left on `request.state.answer_headers`, so an error answer about it (failed,
    timed out) names it too: the surface's error handler (surface_app) adds them."""
    job, _ = await jobs.submit(spec, acknowledge=False)
    wait_seconds = request.state.container.settings.max_wait_seconds
    job, failure = await settle(jobs, job, wait_seconds=wait_seconds)
    request.state.answer_headers = job_headers(job, started=started, waited_here=True, id_header=id_header)
    if failure is not None:
        raise failure
    return job
