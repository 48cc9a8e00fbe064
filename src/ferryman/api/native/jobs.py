"""The native jobs router: submit, read, list, cancel and follow jobs."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ferryman.api.deps import Jobs, JobsReader, JobsWriter
from ferryman.api.native.schemas import JobCreate, job_view
from ferryman.api.openapi import ANY_MEDIA, EVENTS_ONLY, json_answer, json_body
from ferryman.api.parsing import parse_body
from ferryman.api.timing import server_timing
from ferryman.errors import InvalidRequest, NotFound
from ferryman.jobs import Job, JobEvent, JobService, JobSpec, JobState, QueueInfo, region_of
from ferryman.types import JobId, Region, Task

router = APIRouter()

MAX_PAGE = 100

JOB = {"$ref": "#/components/schemas/Job"}
ONE_JOB: dict[int | str, dict[str, Any]] = {200: json_answer("The job.", JOB)}
SUBMITTED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The finished job (with `wait`), or with `stream` the job's events.",
        "content": {"application/json": {"schema": JOB}, "text/event-stream": {"schema": {"type": "string"}}},
    },
    202: json_answer("The job as it stands: queued, or still running when `wait` ran out.", JOB),
}


def _respond(
    job: Job, queue: QueueInfo | None, started: float, *, waited: bool, status: int | None = None
) -> Response:
    handler_ms = (time.perf_counter() - started) * 1000
    code = status or (200 if job.state.is_terminal else 202)
    return JSONResponse(
        job_view(job, queue),
        status_code=code,
        headers={
            "Server-Timing": server_timing(job, handler_ms=handler_ms, waited_here=waited),
            "Location": f"/v1/jobs/{job.id}",
        },
    )


def _sse(event: JobEvent, data: dict[str, Any]) -> bytes:
    return (
        f"id: {event.seq}\nevent: {event.kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
    )


async def _render_events(
    jobs: JobService, job_id: str, events: AsyncIterator[JobEvent]
) -> AsyncIterator[bytes]:
    async for event in events:
        if event.kind == "done":
            final = jobs.final(job_id)
            yield _sse(event, job_view(final) if final is not None else event.data)
            return
        yield _sse(event, event.data)


def _stream(jobs: JobService, job_id: str, events: AsyncIterator[JobEvent]) -> Response:
    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        "Ferryman-Job-Id": job_id,
        "Location": f"/v1/jobs/{job_id}",
    }
    return StreamingResponse(
        _render_events(jobs, job_id, events), media_type="text/event-stream", headers=headers, status_code=200
    )


@router.post(
    "/jobs",
    openapi_extra=json_body({"$ref": "#/components/schemas/JobCreate"}),
    responses=SUBMITTED,
)
async def create_job(
    request: Request,
    principal: JobsWriter,
    jobs: Jobs,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    started = time.perf_counter()
    raw = await request.body()
    body = parse_body(JobCreate, raw)
    spec = JobSpec(
        org_id=principal.org_id,
        region=principal.region,
        task=body.task,
        model=body.model,
        priority=body.priority,
        payload={**body.input, "stream": True} if body.stream else body.input,
        idempotency_key=idempotency_key,
        request_digest=hashlib.sha256(raw).hexdigest() if idempotency_key else None,
        webhook_url=body.webhook_url,
        deadline_seconds=body.deadline_seconds,
        weight=principal.weight,
    )
    job, created = await jobs.submit(spec, acknowledge=not body.wait)
    if body.stream:
        return _stream(jobs, job.id, await jobs.follow(principal.org_id, job.id))
    if body.wait and not job.state.is_terminal:
        job = await jobs.wait(principal.org_id, job.id, body.wait)
        return _respond(job, None, started, waited=True)
    queue = None
    if job.state is JobState.QUEUED and not created:
        job, queue = await jobs.get(principal.org_id, job.id)
    return _respond(job, queue, started, waited=False, status=None if job.state.is_terminal else 202)


@router.get("/jobs/{job_id}", responses=ONE_JOB)
async def get_job(job_id: str, principal: JobsReader, jobs: Jobs) -> Response:
    started = time.perf_counter()
    job, queue = await jobs.get(principal.org_id, job_id)
    return _respond(job, queue, started, waited=False, status=200)


@router.get(
    "/jobs",
    responses={200: json_answer("A page of jobs, newest first.", {"$ref": "#/components/schemas/JobList"})},
)
async def list_jobs(
    principal: JobsReader,
    jobs: Jobs,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    status: JobState | None = None,
    task: Task | None = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    region: Region | None = None,
) -> Response:
    page = await jobs.find_page(
        principal.org_id,
        region or principal.region,
        cursor=cursor,
        limit=limit,
        state=status,
        task=task,
        model=model,
    )
    return JSONResponse(
        {
            "object": "list",
            "data": [job_view(j) for j in page.jobs],
            "next_cursor": page.next_cursor,
            "has_more": page.next_cursor is not None,
        }
    )


@router.post("/jobs/{job_id}/cancel", responses=ONE_JOB)
async def cancel_job(job_id: str, principal: JobsWriter, jobs: Jobs) -> Response:
    started = time.perf_counter()
    job = await jobs.cancel(principal.org_id, job_id)
    return _respond(job, None, started, waited=False, status=200)


@router.get("/jobs/{job_id}/events", responses=EVENTS_ONLY)
async def job_events(
    job_id: str,
    principal: JobsReader,
    jobs: Jobs,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> Response:
    after = 0
    if last_event_id:
        if not last_event_id.isdigit():
            raise InvalidRequest("Last-Event-ID must be the numeric id of an event")
        after = int(last_event_id)
    return _stream(jobs, job_id, await jobs.follow(principal.org_id, job_id, after))


@router.get("/jobs/{job_id}/blobs/{name}", responses=ANY_MEDIA)
async def job_blob(job_id: str, name: str, principal: JobsReader, jobs: Jobs) -> Response:
    region = region_of(job_id)
    found = await jobs.read_blob(principal.org_id, JobId(job_id), name) if region else None
    if found is None:
        raise NotFound(f"blob {name!r} of job {job_id!r} not found")
    content_type, data = found
    return Response(data, media_type=content_type, headers={"Cache-Control": "private, max-age=3600"})
