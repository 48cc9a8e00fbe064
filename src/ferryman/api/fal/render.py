"""Rendering jobs, queue states and errors in fal's queue API format."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.responses import JSONResponse

from ferryman import errors
from ferryman.api.errors import retry_headers, status_of
from ferryman.api.signed_urls import UrlSigner, with_media_urls
from ferryman.jobs import Job, JobState, QueueInfo
from ferryman.types import Task


def queue_urls(origin: str, model: str, job_id: str) -> dict[str, str]:
    base = f"{origin}/fal/{quote(model, safe='/')}/requests/{job_id}"
    return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}


def accepted(origin: str, job: Job, queue: QueueInfo | None = None) -> dict[str, Any]:
    """The answer to a submission: where to poll, fetch and cancel it."""
    return {
        "request_id": job.id,
        "status": "IN_QUEUE",
        **queue_urls(origin, job.model, job.id),
        "queue_position": queue.position if queue else 0,
    }


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["detail", "error_type"],
    "properties": {"detail": {"type": "string"}, "error_type": {"type": "string"}},
}


def render_error(error: errors.FerrymanError) -> JSONResponse:
    headers = retry_headers(error)
    code = str((error.details or {}).get("code") or error.code)
    return JSONResponse(
        {"detail": error.message, "error_type": code}, status_code=status_of(error), headers=headers
    )


def _metrics(job: Job) -> dict[str, Any]:
    work_ms = job.timings.work_ms
    return {"inference_time": work_ms / 1000 if work_ms is not None else None}


def status_view(origin: str, job: Job, queue: QueueInfo | None, *, with_logs: bool) -> dict[str, Any]:
    urls = queue_urls(origin, job.model, job.id)
    logs = (
        [
            {
                "message": f"job {job.state.value}",
                "level": "INFO",
                "source": "ferryman",
                "timestamp": job.started_at or job.created_at,
            }
        ]
        if with_logs
        else None
    )
    if job.state is JobState.QUEUED:
        return {
            "status": "IN_QUEUE",
            "request_id": job.id,
            "queue_position": queue.position if queue else 0,
            "response_url": urls["response_url"],
            "logs": logs,
        }
    if not job.state.is_terminal:
        return {
            "status": "IN_PROGRESS",
            "request_id": job.id,
            "response_url": urls["response_url"],
            "logs": logs,
        }
    view: dict[str, Any] = {
        "status": "COMPLETED",
        "request_id": job.id,
        "response_url": urls["response_url"],
        "logs": logs,
        "metrics": _metrics(job),
    }
    if job.state is not JobState.SUCCEEDED and job.error is not None:
        view["error"], view["error_type"] = job.error.message, job.error.code
    return view


def result_view(job: Job, *, signer: UrlSigner, origin: str) -> dict[str, Any]:
    """The succeeded job's output in fal's result conventions; media as signed URLs."""
    result = with_media_urls(job.result or {}, signer=signer, origin=origin, org_id=job.org_id, job_id=job.id)
    timings = {"inference": (job.timings.work_ms or 0) / 1000}
    if job.task in (Task.IMAGE, Task.VIDEO):
        images = [{k: v for k, v in image.items() if k != "blob"} for image in result.get("images", [])]
        if job.task is Task.VIDEO:
            video = result.get("video") or (images[0] if images else {})
            return {
                "video": {k: v for k, v in video.items() if k != "blob"},
                "seed": result.get("seed"),
                "timings": timings,
            }
        return {
            "images": images,
            "seed": result.get("seed"),
            "timings": timings,
            "has_nsfw_concepts": [False] * len(images),
        }
    if job.task is Task.SPEECH:
        audio = result.get("audio", {})
        return {
            "audio": {"url": audio.get("url"), "content_type": audio.get("content_type")},
            "timings": timings,
        }
    if job.task is Task.TRANSCRIPTION:
        return {"text": result.get("text", ""), "chunks": result.get("segments", []), "timings": timings}
    if job.task in (Task.CHAT, Task.COMPLETION):
        choice = (result.get("choices") or [{}])[0]
        text = choice.get("message", {}).get("content") if job.task is Task.CHAT else choice.get("text")
        return {"output": text or "", "usage": job.usage, "timings": timings}
    return {**result, "usage": job.usage, "timings": timings}
