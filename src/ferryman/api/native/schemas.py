"""Wire formats of the native API: request bodies it accepts and how it renders jobs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ferryman.jobs import Job, QueueInfo
from ferryman.types import Priority, Task

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Task
    model: str = Field(min_length=1, max_length=200)
    input: dict[str, Any]
    priority: Priority = Priority.INTERACTIVE
    webhook_url: str | None = Field(None, max_length=2048)
    wait: float | None = Field(None, ge=0, description="Seconds to wait for the result before answering 202.")
    stream: bool = False
    deadline_seconds: float | None = Field(None, gt=0, le=7 * 86400)


def _with_urls(value: Any, job_id: str) -> Any:
    """Media outputs are referred to as {"blob": name}; give each a URL the owner can fetch."""
    if isinstance(value, dict):
        out = {k: _with_urls(v, job_id) for k, v in value.items()}
        if isinstance(value.get("blob"), str):
            out["url"] = f"/v1/jobs/{job_id}/blobs/{value['blob']}"
        return out
    if isinstance(value, list):
        return [_with_urls(v, job_id) for v in value]
    return value


def job_view(job: Job, queue: QueueInfo | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": job.id,
        "object": "job",
        "status": job.state.value,
        "task": job.task.value,
        "model": job.model,
        "priority": job.priority.value,
        "region": job.region.value,
        "attempts": job.attempts,
        "worker_id": job.worker_id,
        "created_at": job.created_at,
        "dispatched_at": job.dispatched_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "deadline_at": job.deadline_at,
        "timings": {
            "wait_ms": job.timings.wait_ms,
            "worker_rtt_ms": job.timings.worker_rtt_ms,
            "work_ms": job.timings.work_ms,
        },
        "queue": None,
        "result": _with_urls(job.result, job.id) if job.result is not None else None,
        "usage": job.usage or None,
        "error": None,
    }
    if queue is not None:
        view["queue"] = {
            "position": queue.position,
            "wait_reason": queue.wait_reason,
            "estimated_start_seconds": queue.estimated_start_seconds,
        }
    if job.error is not None:
        view["error"] = {"code": job.error.code, "message": job.error.message}
    return view
