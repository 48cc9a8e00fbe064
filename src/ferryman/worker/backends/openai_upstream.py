"""`openai-upstream`: runs jobs on an OpenAI-compatible server (vLLM, SGLang, llama.cpp server, Ollama, ...).

The upstream does the inference; this backend owns one pooled HTTP client to it and translates each task
between Ferryman's canonical shapes and the OpenAI wire format (`_openai_shapes`). It sits on the benchmark
path, so it builds no per-job client and copies payloads as little as it can.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx
import structlog

from ferryman import __version__
from ferryman.errors import ConfigError
from ferryman.protocol import ModelOffer
from ferryman.types import Task
from ferryman.worker.backends import _openai_shapes as shapes
from ferryman.worker.backends._sse import DONE, iter_sse_data
from ferryman.worker.backends._upstream_errors import (
    bad_response,
    error_from_event,
    error_from_status,
    error_from_transport,
)
from ferryman.worker.backends.base import BackendError, BackendSettings, Chunk, WorkItem

log = structlog.get_logger(__name__)

DEFAULT_TASKS = (Task.CHAT, Task.COMPLETION, Task.EMBEDDINGS, Task.IMAGE, Task.SPEECH, Task.TRANSCRIPTION)
CONNECT_TIMEOUT_SECONDS = 10.0
MIN_POOL_CONNECTIONS = 64
_PATHS = {Task.CHAT: "chat/completions", Task.COMPLETION: "completions"}


def parse_tasks(raw: str | None) -> tuple[Task, ...]:
    """The tasks named in `options["tasks"]` (a comma list), or every task an OpenAI-compatible API has.

    Raises ConfigError at start-up for a name that is not a task this backend can forward.
    """
    if raw is None or not raw.strip():
        return DEFAULT_TASKS
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in {t.value for t in DEFAULT_TASKS}]
    if unknown:
        raise ConfigError(
            f"openai-upstream cannot forward tasks {unknown}; "
            f"expected a comma list of {[t.value for t in DEFAULT_TASKS]}"
        )
    return tuple(Task(name) for name in dict.fromkeys(names))


def _client(settings: BackendSettings, base_url: str) -> httpx.AsyncClient:
    headers = {"user-agent": f"ferryman/{__version__}"}
    if settings.upstream_api_key:
        headers["authorization"] = f"Bearer {settings.upstream_api_key}"
    # a job holds one connection while it runs; keep enough alive that no job pays for a new handshake
    connections = max(MIN_POOL_CONNECTIONS, 2 * settings.slots)
    timeout = httpx.Timeout(
        settings.timeout_seconds, connect=min(CONNECT_TIMEOUT_SECONDS, settings.timeout_seconds)
    )
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout, limits=limits)


class OpenAIUpstreamBackend:
    """Forwards each job to `settings.upstream_url` under the job's model name.

    Raises ConfigError when built without an upstream URL or without the model names the upstream serves:
    the worker must know what to offer before it registers.
    """

    name = "openai-upstream"

    def __init__(self, settings: BackendSettings) -> None:
        if not settings.upstream_url:
            raise ConfigError(
                "openai-upstream needs --upstream-url, the server's OpenAI base URL "
                "(e.g. http://127.0.0.1:9000/v1)"
            )
        if not settings.models:
            raise ConfigError(
                "openai-upstream needs --models, the model names the upstream serves (e.g. --models my-model)"
            )
        self._models = settings.models
        self._tasks = parse_tasks(settings.options.get("tasks"))
        self._client = _client(settings, settings.upstream_url)

    def offers(self) -> Sequence[ModelOffer]:
        return [ModelOffer(name=model, tasks=self._tasks) for model in self._models]

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run(self, item: WorkItem) -> AsyncGenerator[Chunk, None]:
        if item.task not in self._tasks or item.model not in self._models:
            raise BackendError(
                "unsupported",
                f"this worker forwards {[t.value for t in self._tasks]} for "
                f"{list(self._models)}, not {item.task.value} for {item.model!r}",
            )
        payload = item.payload
        if item.task in _PATHS and payload.get("stream"):
            # closed here, not by the GC: the connection and the upstream's work end when the job is cancelled
            async with contextlib.aclosing(self._stream_text(item)) as chunks:
                async for chunk in chunks:
                    yield chunk
        elif item.task in _PATHS:
            body = shapes.text_request(item.task, item.model, payload, stream=False)
            yield shapes.text_output(item.task, await self._post_json(_PATHS[item.task], json=body))
        elif item.task is Task.EMBEDDINGS:
            raw = await self._post_json("embeddings", json=shapes.embeddings_request(item.model, payload))
            yield shapes.embeddings_output(raw)
        elif item.task is Task.IMAGE:
            raw = await self._post_json("images/generations", json=shapes.image_request(item.model, payload))
            for chunk in shapes.image_chunks(raw, payload):
                yield chunk
        elif item.task is Task.SPEECH:
            for chunk in await self._speech(item):
                yield chunk
        else:
            fields, files = shapes.transcription_form(item.model, payload)
            response = await self._post("audio/transcriptions", data=fields, files=files)
            yield shapes.transcription_output(_json_or_text(response))

    async def _post(self, path: str, **request: Any) -> httpx.Response:
        try:
            response = await self._client.post(path, **request)
        except httpx.TransportError as exc:
            log.warning("upstream.unreachable", path=path, error=type(exc).__name__)
            raise error_from_transport(exc) from None
        if response.is_error:
            raise error_from_status(response.status_code, response.content)
        return response

    async def _post_json(self, path: str, **request: Any) -> Any:
        response = await self._post(path, **request)
        try:
            return json.loads(response.content)
        except ValueError:
            raise bad_response(f"{path} did not answer JSON") from None

    async def _speech(self, item: WorkItem) -> list[Chunk]:
        body = shapes.speech_request(item.model, item.payload)
        response = await self._post("audio/speech", json=body)
        characters = len(str(item.payload.get("input", "")))
        return shapes.speech_chunks(
            response.content, body["response_format"], response.headers.get("content-type"), characters
        )

    async def _stream_text(self, item: WorkItem) -> AsyncGenerator[Chunk, None]:
        """Yield deltas as they come; closing this generator closes the connection, stopping the upstream."""
        body = shapes.text_request(item.task, item.model, item.payload, stream=True)
        accumulator = shapes.StreamAccumulator(item.task)
        is_done = False
        try:
            async with self._client.stream("POST", _PATHS[item.task], json=body) as response:
                if response.is_error:
                    raise error_from_status(response.status_code, await response.aread())
                # read on past [DONE] to the end: a connection with an unread body can't go back to the pool
                async with contextlib.aclosing(iter_sse_data(response.aiter_lines())) as events:
                    async for data in events:
                        if data == DONE or is_done:
                            is_done = True
                            continue
                        for delta in accumulator.feed(_stream_event(data)):
                            yield delta
        except httpx.TransportError as exc:
            log.warning("upstream.stream_broken", error=type(exc).__name__)
            raise error_from_transport(exc) from None
        if not (is_done or accumulator.is_finished):
            raise BackendError(
                "upstream_incomplete",
                "the upstream ended the stream before the answer finished",
                retryable=True,
            )
        if accumulator.usage is None:
            log.warning("upstream.usage_missing", model=item.model)
        yield accumulator.output()


def _stream_event(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:
        raise bad_response("a stream event is not JSON") from None
    if not isinstance(event, dict):
        raise bad_response("a stream event is not a JSON object")
    if event.get("error") is not None:
        raise error_from_event(event["error"])
    return event


def _json_or_text(response: httpx.Response) -> Any:
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            return json.loads(response.content)
        except ValueError:
            raise bad_response("the transcription is not valid JSON") from None
    return response.text
