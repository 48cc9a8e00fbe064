"""How an OpenAI-compatible upstream's failures become `BackendError`s, and which of them are worth a retry.

The rule: whatever may go better on another attempt or another worker (the server is down, overloaded, slow,
or this worker's key is wrong) is retryable; a request the upstream rejected on its merits is not, and the
client sees the upstream's own message.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from ferryman.worker.backends.base import BackendError

MAX_MESSAGE_CHARS = 1000
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


def upstream_message(body: bytes) -> str:
    """The human message in an error body, whichever server wrote it.

    OpenAI, vLLM and llama.cpp send `{"error": {"message"}}`, Ollama `{"error": "..."}`, FastAPI-based servers
    `{"detail": ...}`, older vLLM `{"message"}`; anything else is returned as text, truncated.
    """
    try:
        raw = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:MAX_MESSAGE_CHARS] or "(empty body)"
    return message_of(raw)[:MAX_MESSAGE_CHARS]


def message_of(raw: Any) -> str:
    if isinstance(raw, dict):
        for key in ("error", "message", "detail"):
            value = raw.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict | list):
                return message_of(value)
    if isinstance(raw, list) and raw:
        return message_of(raw[0])
    return json.dumps(raw)[:MAX_MESSAGE_CHARS]


def error_from_status(status: int, body: bytes) -> BackendError:
    message = f"upstream answered {status}: {upstream_message(body)}"
    if status in (401, 403):
        # the worker's key is wrong, not the client's job: another worker may serve it, and this one is
        # quarantined if it keeps failing
        return BackendError("upstream_unauthorized", message, retryable=True)
    if status in _RETRYABLE_4XX:
        return BackendError("upstream_busy", message, retryable=True)
    if 400 <= status < 500:
        return BackendError("upstream_bad_request", message, retryable=False)
    return BackendError("upstream_error", message, retryable=True)


def error_from_event(error: Any) -> BackendError:
    """An `{"error": ...}` event inside a stream; retryable only when it carries a 5xx code."""
    code = error.get("code") if isinstance(error, dict) else None
    retryable = isinstance(code, int) and code >= 500
    return BackendError(
        "upstream_error", f"upstream failed mid-stream: {message_of(error)}", retryable=retryable
    )


def error_from_transport(exc: httpx.TransportError) -> BackendError:
    # the exception text names the upstream's address, which is the operator's business, not the client's
    if isinstance(exc, httpx.TimeoutException):
        return BackendError(
            "upstream_timeout", f"the upstream timed out ({type(exc).__name__})", retryable=True
        )
    return BackendError(
        "upstream_unavailable", f"could not reach the upstream ({type(exc).__name__})", retryable=True
    )


def bad_response(what: str) -> BackendError:
    return BackendError(
        "upstream_bad_response", f"the upstream's answer is not OpenAI-compatible: {what}", retryable=True
    )
