"""The OpenAI-compatible routes: each parses, calls the core once, and renders."""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from ferryman.api.deps import AppContainer, Jobs, JobsReader, JobsWriter
from ferryman.api.edge import nul_refusal
from ferryman.api.fal.render import accepted
from ferryman.api.openai import render
from ferryman.api.openai.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    ImageRequest,
    SpeechRequest,
    TranscriptionFormat,
)
from ferryman.api.openapi import ACCEPTED, JSON_OR_TEXT, STREAMED, json_answer
from ferryman.api.outcomes import read_blob, spec_for
from ferryman.api.signed_urls import UrlSigner, origin_of
from ferryman.api.timing import job_headers, run_timed, stream_headers
from ferryman.errors import NotFound
from ferryman.identity import Principal
from ferryman.jobs import Job, JobService
from ferryman.types import Priority, Task

router = APIRouter()

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SPEECH: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The audio, in the asked format.",
        "content": {"audio/*": {"schema": {"type": "string", "format": "binary"}}},
    }
}
REQUEST_ID = "x-request-id"  # the job id, where the openai SDK reads `_request_id`


def _headers(job: Job, started: float, *, waited: bool = True) -> dict[str, str]:
    return job_headers(job, started=started, waited_here=waited, id_header=REQUEST_ID)


async def _run(
    request: Request,
    jobs: JobService,
    principal: Principal,
    task: Task,
    model: str,
    payload: dict[str, Any],
    *,
    started: float,
) -> Job:
    spec = spec_for(principal, task=task, model=model, payload=payload)
    return await run_timed(request, jobs, spec, started=started, id_header=REQUEST_ID)


async def _accept(
    request: Request, jobs: JobService, principal: Principal, task: Task, model: str, payload: dict[str, Any]
) -> JSONResponse:
    """`"async": true`: 202 with a request id pollable through the fal-style queue endpoints."""
    started = time.perf_counter()
    job, _ = await jobs.submit(
        spec_for(principal, task=task, model=model, payload=payload, priority=Priority.ASYNC)
    )
    return JSONResponse(
        accepted(origin_of(request), job), status_code=202, headers=_headers(job, started, waited=False)
    )


async def _text(
    request: Request,
    body: ChatCompletionRequest | CompletionRequest,
    principal: Principal,
    jobs: JobService,
    *,
    chat: bool,
) -> Response:
    started = time.perf_counter()
    task = Task.CHAT if chat else Task.COMPLETION
    payload = body.payload()
    if body.run_async:
        return await _accept(request, jobs, principal, task, body.model, payload)
    if body.stream:
        job, _ = await jobs.submit(spec_for(principal, task=task, model=body.model, payload=payload))
        events = await jobs.follow(principal.org_id, job.id)
        return StreamingResponse(
            render.text_stream(jobs, job, events, chat=chat, include_usage=body.include_usage),
            media_type="text/event-stream",
            headers={**STREAM_HEADERS, **stream_headers(job, started=started, id_header=REQUEST_ID)},
        )
    job = await _run(request, jobs, principal, task, body.model, payload, started=started)
    rendered = render.chat_completion(job) if chat else render.completion(job)
    return JSONResponse(rendered, headers=_headers(job, started))


@router.post("/chat/completions", responses={**STREAMED, **ACCEPTED})
async def chat_completions(
    request: Request, body: ChatCompletionRequest, principal: JobsWriter, jobs: Jobs
) -> Response:
    return await _text(request, body, principal, jobs, chat=True)


@router.post("/completions", responses={**STREAMED, **ACCEPTED})
async def completions(
    request: Request, body: CompletionRequest, principal: JobsWriter, jobs: Jobs
) -> Response:
    return await _text(request, body, principal, jobs, chat=False)


@router.post("/embeddings", responses=ACCEPTED)
async def embeddings(
    request: Request, body: EmbeddingsRequest, principal: JobsWriter, jobs: Jobs
) -> Response:
    started = time.perf_counter()
    if body.run_async:
        return await _accept(request, jobs, principal, Task.EMBEDDINGS, body.model, body.payload())
    job = await _run(request, jobs, principal, Task.EMBEDDINGS, body.model, body.payload(), started=started)
    return JSONResponse(
        render.embeddings(job, encoding_format=body.encoding_format), headers=_headers(job, started)
    )


@router.post("/images/generations", responses=ACCEPTED)
async def images(request: Request, body: ImageRequest, principal: JobsWriter, jobs: Jobs) -> Response:
    started = time.perf_counter()
    if body.run_async:
        return await _accept(request, jobs, principal, Task.IMAGE, body.model, body.payload())
    job = await _run(request, jobs, principal, Task.IMAGE, body.model, body.payload(), started=started)
    assert job.result is not None
    signer: UrlSigner = request.app.state.signer
    data = []
    for image in job.result.get("images", []):
        if body.response_format == "b64_json":
            _, raw = await read_blob(jobs, job, image["blob"])
            data.append({"b64_json": base64.b64encode(raw).decode(), "revised_prompt": None})
        else:
            url = origin_of(request) + signer.path(job.org_id, job.id, image["blob"])
            data.append({"url": url, "revised_prompt": None})
    return JSONResponse({"created": int(job.created_at), "data": data}, headers=_headers(job, started))


@router.post("/audio/speech", responses={**SPEECH, **ACCEPTED})
async def speech(request: Request, body: SpeechRequest, principal: JobsWriter, jobs: Jobs) -> Response:
    started = time.perf_counter()
    if body.run_async:
        return await _accept(request, jobs, principal, Task.SPEECH, body.model, body.payload())
    job = await _run(request, jobs, principal, Task.SPEECH, body.model, body.payload(), started=started)
    assert job.result is not None
    content_type, audio = await read_blob(jobs, job, job.result["audio"]["blob"])
    return Response(audio, media_type=content_type, headers=_headers(job, started))


@router.post("/audio/transcriptions", responses=JSON_OR_TEXT)
async def transcriptions(
    request: Request,
    principal: JobsWriter,
    jobs: Jobs,
    file: Annotated[UploadFile, File()],
    model: Annotated[str, Form(min_length=1, max_length=200)],
    language: Annotated[str | None, Form(max_length=20)] = None,
    prompt: Annotated[str | None, Form(max_length=4000)] = None,
    response_format: Annotated[TranscriptionFormat, Form()] = "json",
    temperature: Annotated[float | None, Form(ge=0, le=1)] = None,
) -> Response:
    started = time.perf_counter()
    for name, text in (("model", model), ("language", language), ("prompt", prompt)):
        if text and "\x00" in text:  # RefuseNul leaves multipart bodies (binary files) to their routes
            raise nul_refusal(f"{name} field")
    audio = await file.read()
    payload = {
        k: v
        for k, v in {
            "audio_b64": base64.b64encode(audio).decode(),
            "filename": file.filename or "audio",
            "content_type": file.content_type or "application/octet-stream",
            "language": language,
            "prompt": prompt,
            "response_format": response_format,
            "temperature": temperature,
        }.items()
        if v is not None
    }
    job = await _run(request, jobs, principal, Task.TRANSCRIPTION, model, payload, started=started)
    result = job.result or {}
    headers = _headers(job, started)
    if response_format in ("text", "srt", "vtt"):
        return PlainTextResponse(str(result.get("text", "")), headers=headers)
    if response_format == "verbose_json":
        return JSONResponse(
            {
                "task": "transcribe",
                "language": result.get("language"),
                "duration": result.get("duration"),
                "text": result.get("text", ""),
                "segments": result.get("segments", []),
            },
            headers=headers,
        )
    return JSONResponse({"text": result.get("text", "")}, headers=headers)


def _model_view(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "ferryman"}


MODEL_SCHEMA = {
    "type": "object",
    "required": ["id", "object", "created", "owned_by"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "model"},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
    },
}
MODEL_LIST_SCHEMA = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": MODEL_SCHEMA}},
}


@router.get(
    "/models", responses={200: json_answer("The models served in the token's region.", MODEL_LIST_SCHEMA)}
)
async def list_models(principal: JobsReader, container: AppContainer) -> JSONResponse:
    node = container.nodes[principal.region]
    return JSONResponse({"object": "list", "data": [_model_view(info.name) for info in node.models()]})


@router.get("/models/{model:path}", responses={200: json_answer("The model.", MODEL_SCHEMA)})
async def get_model(model: str, principal: JobsReader, container: AppContainer) -> JSONResponse:
    if container.jobs.model_info(principal.region, model) is None:
        raise NotFound(
            f"The model '{model}' does not exist", details={"code": "model_not_found", "param": "model"}
        )
    return JSONResponse(_model_view(model))
