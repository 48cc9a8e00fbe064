"""The fal-compatible queue routes: submit, status, result, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from ferryman.api.deps import Jobs, JobsReader, JobsWriter
from ferryman.api.fal import render
from ferryman.api.fal.schemas import payload_for, task_for
from ferryman.api.outcomes import failure_of, spec_for
from ferryman.api.signed_urls import UrlSigner, origin_of
from ferryman.errors import InvalidRequest, NotFound
from ferryman.jobs import JobState
from ferryman.types import Priority

router = APIRouter()


@router.post("/{model:path}")
async def submit(
    request: Request,
    model: str,
    principal: JobsWriter,
    jobs: Jobs,
    fal_webhook: Annotated[str | None, Query(max_length=2048)] = None,
) -> JSONResponse:
    info = jobs.model_info(principal.region, model)
    if info is None:
        raise NotFound(f"model {model!r} is not served in region {principal.region}")
    task = task_for(info.tasks)
    payload = payload_for(task, await request.body())
    job, _ = await jobs.submit(
        spec_for(
            principal,
            task=task,
            model=model,
            payload=payload,
            priority=Priority.ASYNC,
            webhook_url=fal_webhook,
        )
    )
    job, queue = await jobs.get(principal.org_id, job.id)
    return JSONResponse(render.accepted(origin_of(request), job, queue))


@router.get("/{model:path}/requests/{request_id}/status")
async def status(
    request: Request, model: str, request_id: str, principal: JobsReader, jobs: Jobs, logs: bool = False
) -> JSONResponse:
    job, queue = await jobs.get(principal.org_id, request_id)
    view = render.status_view(origin_of(request), job, queue, with_logs=logs)
    return JSONResponse(view, status_code=200 if job.state.is_terminal else 202)


@router.get("/{model:path}/requests/{request_id}")
async def result(
    request: Request, model: str, request_id: str, principal: JobsReader, jobs: Jobs
) -> JSONResponse:
    job, _ = await jobs.get(principal.org_id, request_id)
    if not job.state.is_terminal:
        raise InvalidRequest(
            f"request {request_id} is still {job.state.value}; poll its status_url",
            details={"code": "request_in_progress"},
        )
    if job.state is JobState.CANCELLED:  # not 409: fal-client retries 409s
        raise InvalidRequest(f"request {request_id} was cancelled", details={"code": "request_cancelled"})
    if job.state is not JobState.SUCCEEDED:
        raise failure_of(job)
    signer: UrlSigner = request.app.state.signer
    return JSONResponse(render.result_view(job, signer=signer, origin=origin_of(request)))


@router.put("/{model:path}/requests/{request_id}/cancel")
async def cancel(model: str, request_id: str, principal: JobsWriter, jobs: Jobs) -> JSONResponse:
    job, _ = await jobs.get(principal.org_id, request_id)
    if job.state.is_terminal:  # fal's answer, not the core's 409 (which fal-client would retry)
        return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
    await jobs.cancel(principal.org_id, request_id)
    return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)
