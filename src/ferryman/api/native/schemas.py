"""Wire formats of the native API: request bodies it accepts and how it renders jobs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ferryman.jobs import Job, JobState, QueueInfo
from ferryman.types import Priority, Region, Task

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


_NULLABLE_NUMBER = {"type": ["number", "null"]}
# what job_view renders, as the OpenAPI component `Job` (tests/e2e/test_openapi_schemathesis.py checks answers)
JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "status", "task", "model", "priority", "region", "attempts", "timings"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "job"},
        "status": {"enum": [s.value for s in JobState]},
        "task": {"enum": [t.value for t in Task]},
        "model": {"type": "string"},
        "priority": {"enum": [p.value for p in Priority]},
        "region": {"enum": [r.value for r in Region]},
        "attempts": {"type": "integer", "minimum": 0},
        "worker_id": {"type": ["string", "null"]},
        "created_at": {"type": "number"},
        "dispatched_at": _NULLABLE_NUMBER,
        "started_at": _NULLABLE_NUMBER,
        "finished_at": _NULLABLE_NUMBER,
        "deadline_at": _NULLABLE_NUMBER,
        "timings": {
            "type": "object",
            "properties": {k: _NULLABLE_NUMBER for k in ("wait_ms", "worker_rtt_ms", "work_ms")},
        },
        "queue": {
            "type": ["object", "null"],
            "properties": {
                "position": {"type": "integer"},
                "wait_reason": {"type": ["string", "null"]},
                "estimated_start_seconds": _NULLABLE_NUMBER,
            },
        },
        "result": {"type": ["object", "null"]},
        "usage": {"type": ["object", "null"]},
        "error": {
            "type": ["object", "null"],
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
JOB_LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["object", "data", "next_cursor", "has_more"],
    "properties": {
        "object": {"const": "list"},
        "data": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
        "next_cursor": {"type": ["string", "null"]},
        "has_more": {"type": "boolean"},
    },
}


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
