"""Rendering the core's jobs, streams and errors in OpenAI's wire format."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from starlette.responses import JSONResponse

from ferryman import errors
from ferryman.api.errors import retry_headers, status_of
from ferryman.api.outcomes import failure_of
from ferryman.jobs import Job, JobEvent, JobService, JobState

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    410: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def error_body(status: int, message: str, *, code: str | None, param: str | None = None) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def param_of(error: errors.FerrymanError) -> str | None:
    details = error.details or {}
    if isinstance(details.get("param"), str):
        return str(details["param"])
    problems = details.get("errors")
    if isinstance(problems, list) and problems:
        loc = [p for p in problems[0].get("loc", []) if p != "body"]
        return ".".join(str(p) for p in loc) or None
    return None


def render_error(error: errors.FerrymanError) -> JSONResponse:
    status = status_of(error)
    code = str((error.details or {}).get("code") or error.code)
    headers = retry_headers(error)
    return JSONResponse(
        error_body(status, error.message, code=code, param=param_of(error)),
        status_code=status,
        headers=headers,
    )


def usage_of(
    job: Job, keys: tuple[str, ...] = ("prompt_tokens", "completion_tokens", "total_tokens")
) -> dict[str, int]:
    return {k: int(job.usage.get(k, 0) or 0) for k in keys}


def chat_completion(job: Job) -> dict[str, Any]:
    assert job.result is not None
    choices = []
    for choice in job.result.get("choices", []):
        message = {"role": "assistant", "content": None, "refusal": None, **choice.get("message", {})}
        choices.append(
            {
                "index": choice.get("index", 0),
                "message": message,
                "logprobs": None,
                "finish_reason": choice.get("finish_reason", "stop"),
            }
        )
    return {
        "id": job.id,
        "object": "chat.completion",
        "created": int(job.created_at),
        "model": job.model,
        "choices": choices,
        "usage": usage_of(job),
        "system_fingerprint": None,
    }


def completion(job: Job) -> dict[str, Any]:
    assert job.result is not None
    choices = [
        {
            "index": c.get("index", 0),
            "text": c.get("text", ""),
            "logprobs": None,
            "finish_reason": c.get("finish_reason", "stop"),
        }
        for c in job.result.get("choices", [])
    ]
    return {
        "id": job.id,
        "object": "text_completion",
        "created": int(job.created_at),
        "model": job.model,
        "choices": choices,
        "usage": usage_of(job),
    }


def embeddings(job: Job, *, encoding_format: str) -> dict[str, Any]:
    assert job.result is not None
    data = []
    for item in job.result.get("data", []):
        vector: Any = item["embedding"]
        if encoding_format == "base64":
            vector = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
        data.append({"object": "embedding", "index": item["index"], "embedding": vector})
    return {
        "object": "list",
        "data": data,
        "model": job.model,
        "usage": usage_of(job, ("prompt_tokens", "total_tokens")),
    }


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _stream_error(error: errors.FerrymanError) -> bytes:
    status = status_of(error)
    code = str((error.details or {}).get("code") or error.code)
    return _sse(error_body(status, error.message, code=code))


async def text_stream(
    jobs: JobService, job: Job, events: AsyncIterator[JobEvent], *, chat: bool, include_usage: bool
) -> AsyncIterator[bytes]:
    """chat.completion.chunk (or text_completion) SSE; a job that fails mid-way ends with an error event."""
    base = {
        "id": job.id,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(job.created_at),
        "model": job.model,
    }
    if chat:
        yield _sse(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
        )
    async for event in events:
        if event.kind == "chunk":
            yield _sse({**base, "choices": [_delta_choice(event.data, chat=chat)]})
        elif event.kind == "done":
            final = jobs.final(job.id) or (await jobs.get(job.org_id, job.id))[0]
            if final.state is not JobState.SUCCEEDED:
                yield _stream_error(failure_of(final))
                return
            assert final.result is not None
            for choice in final.result.get("choices", []):
                end = {
                    "index": choice.get("index", 0),
                    "logprobs": None,
                    "finish_reason": choice.get("finish_reason", "stop"),
                }
                yield _sse({**base, "choices": [{**end, "delta": {}} if chat else {**end, "text": ""}]})
            if include_usage:
                yield _sse({**base, "choices": [], "usage": usage_of(final)})
            yield b"data: [DONE]\n\n"
            return
    yield _stream_error(errors.WorkerFailed(f"the stream of job {job.id} ended before the job did"))


def _delta_choice(data: dict[str, Any], *, chat: bool) -> dict[str, Any]:
    index = data.get("index", 0)
    if not chat:
        return {"index": index, "text": data.get("text", ""), "logprobs": None, "finish_reason": None}
    delta = {k: data[k] for k in ("content", "tool_calls") if k in data}
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
