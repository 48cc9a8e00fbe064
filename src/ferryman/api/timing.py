"""The `Server-Timing` header every job response carries: where a job's time went."""

from __future__ import annotations

from ferryman.jobs import Job


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
