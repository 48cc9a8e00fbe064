"""The Anthropic-compatible routes: messages (plain and streamed), count_tokens, models."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ferryman.api.anthropic import render
from ferryman.api.anthropic.schemas import CountTokensRequest, MessagesRequest
from ferryman.api.deps import AppContainer, Jobs, JobsReader, JobsWriter
from ferryman.api.openapi import STREAMED, json_answer
from ferryman.api.outcomes import spec_for
from ferryman.api.timing import job_headers, run_timed, stream_headers
from ferryman.errors import NotFound
from ferryman.types import Task

router = APIRouter()
REQUEST_ID = "request-id"  # the job id, where the anthropic SDK reads `_request_id`


@router.post("/messages", responses=STREAMED)
async def messages(request: Request, body: MessagesRequest, principal: JobsWriter, jobs: Jobs) -> Response:
    started = time.perf_counter()
    spec = spec_for(principal, task=Task.CHAT, model=body.model, payload=body.payload())
    if body.stream:
        job, _ = await jobs.submit(spec)  # acknowledged: the stream follows a job that is committed
        events = await jobs.follow(principal.org_id, job.id)
        return StreamingResponse(
            render.message_stream(jobs, job, events),
            media_type="text/event-stream",
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **stream_headers(job, started=started, id_header=REQUEST_ID),
            },
        )
    job = await run_timed(request, jobs, spec, started=started, id_header=REQUEST_ID)
    headers = job_headers(job, started=started, waited_here=True, id_header=REQUEST_ID)
    return JSONResponse(render.message(job), headers=headers)


@router.post("/messages/count_tokens")
async def count_tokens(
    request: Request, body: CountTokensRequest, principal: JobsWriter, jobs: Jobs
) -> Response:
    """Counted by the model's own tokenizer: a one-token generation whose prompt count is the answer."""
    started = time.perf_counter()
    spec = spec_for(principal, task=Task.CHAT, model=body.model, payload=body.as_messages_request().payload())
    job = await run_timed(request, jobs, spec, started=started, id_header=REQUEST_ID)
    headers = job_headers(job, started=started, waited_here=True, id_header=REQUEST_ID)
    return JSONResponse({"input_tokens": render.usage_of(job)["input_tokens"]}, headers=headers)


def _model_view(name: str) -> dict[str, Any]:
    return {"type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"}


MODEL_SCHEMA = {
    "type": "object",
    "required": ["type", "id", "display_name", "created_at"],
    "properties": {
        "type": {"const": "model"},
        "id": {"type": "string"},
        "display_name": {"type": "string"},
        "created_at": {"type": "string"},
    },
}
MODEL_LIST_SCHEMA = {
    "type": "object",
    "required": ["data", "has_more", "first_id", "last_id"],
    "properties": {
        "data": {"type": "array", "items": MODEL_SCHEMA},
        "has_more": {"type": "boolean"},
        "first_id": {"type": ["string", "null"]},
        "last_id": {"type": ["string", "null"]},
    },
}


@router.get(
    "/models", responses={200: json_answer("The models served in the token's region.", MODEL_LIST_SCHEMA)}
)
async def list_models(principal: JobsReader, container: AppContainer) -> JSONResponse:
    names = [info.name for info in container.nodes[principal.region].models()]
    return JSONResponse(
        {
            "data": [_model_view(n) for n in names],
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }
    )


@router.get("/models/{model:path}", responses={200: json_answer("The model.", MODEL_SCHEMA)})
async def get_model(model: str, principal: JobsReader, container: AppContainer) -> JSONResponse:
    if container.jobs.model_info(principal.region, model) is None:
        raise NotFound(f"model: {model}")
    return JSONResponse(_model_view(model))
