"""Rendering jobs, streams and errors in Anthropic's Messages API format."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

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
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


def render_error(error: errors.FerrymanError) -> JSONResponse:
    status = status_of(error)
    headers = retry_headers(error)
    return JSONResponse(error_body(status, error.message), status_code=status, headers=headers)


def usage_of(job: Job) -> dict[str, int]:
    return {
        "input_tokens": int(job.usage.get("prompt_tokens", 0) or 0),
        "output_tokens": int(job.usage.get("completion_tokens", 0) or 0),
    }


def _choice(job: Job) -> dict[str, Any]:
    assert job.result is not None
    choices = job.result.get("choices") or [{}]
    choice: dict[str, Any] = choices[0]
    return choice


def message(job: Job) -> dict[str, Any]:
    choice = _choice(job)
    text = choice.get("message", {}).get("content") or ""
    return {
        "id": job.id,
        "type": "message",
        "role": "assistant",
        "model": job.model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason", "stop"), "end_turn"),
        "stop_sequence": None,
        "usage": usage_of(job),
    }


def _event(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _error_event(error: errors.FerrymanError) -> bytes:
    return _event(error_body(status_of(error), error.message))


async def message_stream(jobs: JobService, job: Job, events: AsyncIterator[JobEvent]) -> AsyncIterator[bytes]:
    """message_start … message_stop; a job that fails mid-way ends with an `error` event."""
    yield _event(
        {
            "type": "message_start",
            "message": {
                "id": job.id,
                "type": "message",
                "role": "assistant",
                "model": job.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        }
    )
    yield _event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    yield _event({"type": "ping"})
    async for event in events:
        if event.kind == "chunk" and event.data.get("content"):
            yield _event(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": event.data["content"]},
                }
            )
        elif event.kind == "done":
            final = jobs.final(job.id) or (await jobs.get(job.org_id, job.id))[0]
            if final.state is not JobState.SUCCEEDED:
                yield _error_event(failure_of(final))
                return
            reason = STOP_REASONS.get(_choice(final).get("finish_reason", "stop"), "end_turn")
            yield _event({"type": "content_block_stop", "index": 0})
            yield _event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": usage_of(final),
                }
            )
            yield _event({"type": "message_stop"})
            return
    yield _error_event(errors.WorkerFailed(f"the stream of job {job.id} ended before the job did"))
