"""What a job used, as the usage outbox records it: counted units, never a payload or an output.

Pure functions of a finished `Job`; the outbox (`usage_outbox.py`) stores and hands out the events. The billing
issue prices these units; here they are only measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ferryman.jobs.models import Job


@dataclass(frozen=True, slots=True)
class Units:
    """Amounts of the things a job can be billed for. Tokens and images are counts; the rest seconds.

    `gpu_seconds` is the worker's work time for the job (its `work_ms`): the time the job held an accelerator
    slot, whether or not the backend behind it uses a GPU."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0
    audio_seconds: float = 0.0
    video_seconds: float = 0.0
    gpu_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One job outcome's usage. `seq` orders the events of a region store; `id` is stable, for deduplication by
    a consumer outside the region store."""

    seq: int
    id: str
    org_id: str
    job_id: str
    fence: int
    model: str
    task: str
    state: str
    units: Units
    created_at: float


def _count(value: Any) -> int:
    """A count the worker reported: a non-negative whole number, or 0 for anything else (a worker is not
    trusted to send numbers; a bad value must not stop the terminal write it rides on)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return 0
    return min(int(value), 2**62)


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return 0.0
    return min(float(value), 1e12)


def units_of(job: Job) -> Units:
    """The units of a finished job, from the usage its worker reported and its measured work time."""
    usage = job.usage or {}
    work_ms = job.timings.work_ms
    return Units(
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        images=_count(usage.get("images")),
        audio_seconds=_seconds(usage.get("audio_seconds")),
        video_seconds=_seconds(usage.get("video_seconds")),
        gpu_seconds=_seconds(work_ms / 1000.0) if work_ms is not None else 0.0,
    )
