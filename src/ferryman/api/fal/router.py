"""The fal-compatible routes: the synchronous run (`fal_client.run`, FAL_RUN_HOST) and the queue (submit,
status, result, cancel; FAL_QUEUE_RUN_HOST)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from ferryman.api.deps import Jobs, JobsReader, JobsWriter
from ferryman.api.fal import render
from ferryman.api.fal.schemas import payload_for, task_for
from ferryman.api.openapi import ERROR_REF, json_body
from ferryman.api.outcomes import failure_of, spec_for
from ferryman.api.signed_urls import UrlSigner, origin_of
from ferryman.api.timing import job_headers, run_timed
from ferryman.errors import Conflict, FerrymanError, InvalidRequest, NotFound
from ferryman.identity import Principal
from ferryman.jobs import Job, JobService, JobState
from ferryman.types import Priority, Task

router = APIRouter()
REQUEST_ID = "x-fal-request-id"  # the job id; fal-client takes a response carrying it for fal's own


def _headers(job: Job, started: float) -> dict[str, str]:
    return job_headers(job, started=started, waited_here=False, id_header=REQUEST_ID)


INPUTS = json_body({"type": "object", "description": "The model's inputs (docs/surfaces.md)."})


async def _inputs(request: Request, jobs: JobService, principal: Principal, model: str) -> tuple[Task, Any]:
    info = jobs.model_info(principal.region, model)
    if info is None:
        raise NotFound(f"model {model!r} is not served in region {principal.region}")
    task = task_for(info.tasks)
    return task, payload_for(task, await request.body())


# registered before the queue's `POST /{model}`, which would otherwise take `run/…` as a model's name
@router.post("/run/{model:path}", openapi_extra=INPUTS)
async def run(request: Request, model: str, principal: JobsWriter, jobs: Jobs) -> JSONResponse:
    """fal's synchronous endpoint (`fal_client.run`): the model's output itself, once the job has ended."""
    started = time.perf_counter()
    task, payload = await _inputs(request, jobs, principal, model)
    spec = spec_for(principal, task=task, model=model, payload=payload)
    try:
        job = await run_timed(request, jobs, spec, started=started, id_header=REQUEST_ID)
    except Conflict as exc:  # cancelled meanwhile: not 409, which fal-client would answer by running it again
        raise InvalidRequest(exc.message, details={"code": "request_cancelled"}) from None
    signer: UrlSigner = request.app.state.signer
    view = render.result_view(job, signer=signer, origin=origin_of(request))
    return JSONResponse(
        view, headers=job_headers(job, started=started, waited_here=True, id_header=REQUEST_ID)
    )


@router.post("/{model:path}", openapi_extra=INPUTS)
async def submit(
    request: Request,
    model: str,
    principal: JobsWriter,
    jobs: Jobs,
    fal_webhook: Annotated[str | None, Query(max_length=2048)] = None,
) -> JSONResponse:
    started = time.perf_counter()
    task, payload = await _inputs(request, jobs, principal, model)
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
    return JSONResponse(render.accepted(origin_of(request), job, queue), headers=_headers(job, started))


@router.get(
    "/{model:path}/requests/{request_id}/status",
    responses={202: {"description": "Queued or in progress.", "content": {"application/json": {}}}},
)
async def status(
    request: Request, model: str, request_id: str, principal: JobsReader, jobs: Jobs, logs: bool = False
) -> JSONResponse:
    started = time.perf_counter()
    job, queue = await jobs.get(principal.org_id, request_id)
    view = render.status_view(origin_of(request), job, queue, with_logs=logs)
    return JSONResponse(
        view, status_code=200 if job.state.is_terminal else 202, headers=_headers(job, started)
    )


@router.get("/{model:path}/requests/{request_id}")
async def result(
    request: Request, model: str, request_id: str, principal: JobsReader, jobs: Jobs
) -> Response:
    started = time.perf_counter()
    job, _ = await jobs.get(principal.org_id, request_id)
    try:
        signer: UrlSigner = request.app.state.signer
        view = _result_of(job, request_id, signer=signer, origin=origin_of(request))
    except FerrymanError as exc:  # an answer about this job, in fal's error format, still naming the job
        response: Response = render.render_error(exc)
        response.headers.update(_headers(job, started))
        return response
    return JSONResponse(view, headers=_headers(job, started))


def _result_of(job: Job, request_id: str, *, signer: UrlSigner, origin: str) -> dict[str, Any]:
    if not job.state.is_terminal:
        raise InvalidRequest(
            f"request {request_id} is still {job.state.value}; poll its status_url",
            details={"code": "request_in_progress"},
        )
    if job.state is JobState.CANCELLED:  # not 409: fal-client retries 409s
        raise InvalidRequest(f"request {request_id} was cancelled", details={"code": "request_cancelled"})
    if job.state is not JobState.SUCCEEDED:
        raise failure_of(job)
    return render.result_view(job, signer=signer, origin=origin)


@router.put(
    "/{model:path}/requests/{request_id}/cancel",
    status_code=202,
    responses={
        400: {
            "description": 'Already completed (`{"status": "ALREADY_COMPLETED"}`), or invalid.',
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            ERROR_REF,
                            {
                                "type": "object",
                                "required": ["status"],
                                "properties": {"status": {"const": "ALREADY_COMPLETED"}},
                            },
                        ]
                    }
                }
            },
        },
    },
)
async def cancel(model: str, request_id: str, principal: JobsWriter, jobs: Jobs) -> JSONResponse:
    started = time.perf_counter()
    job, _ = await jobs.get(principal.org_id, request_id)
    if job.state.is_terminal:  # fal's answer, not the core's 409 (which fal-client would retry)
        return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400, headers=_headers(job, started))
    job = await jobs.cancel(principal.org_id, request_id)
    return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202, headers=_headers(job, started))
