from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.worker.backends.fake_openai_upstream import (
    API_KEY,
    TOOL_ARGUMENTS,
    FakeUpstream,
    tiny_png,
    unused_port,
)

from ferryman.errors import ConfigError
from ferryman.protocol import ModelOffer
from ferryman.types import Task
from ferryman.worker.backends.base import BackendError, BackendSettings, Blob, Chunk, Delta, Output, WorkItem
from ferryman.worker.backends.openai_upstream import OpenAIUpstreamBackend, parse_tasks

pytestmark = pytest.mark.anyio

MODELS = (
    "fake-model",
    "fake-usage-last-chunk",
    "fake-500",
    "fake-slow",
    "fake-stream-error",
    "fake-stream-cut",
)
HELLO = [{"role": "user", "content": "hello there"}]
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


def _settings(url: str, **overrides: Any) -> BackendSettings:
    values: dict[str, Any] = {
        "models": MODELS,
        "upstream_url": url,
        "upstream_api_key": API_KEY,
        "timeout_seconds": 5.0,
    }
    return BackendSettings(**{**values, **overrides})


@pytest.fixture
async def backend(fake_upstream: FakeUpstream) -> AsyncIterator[OpenAIUpstreamBackend]:
    upstream = OpenAIUpstreamBackend(_settings(fake_upstream.url))
    try:
        yield upstream
    finally:
        await upstream.aclose()


async def _run(
    backend: OpenAIUpstreamBackend, task: Task, payload: dict[str, Any], model: str = "fake-model"
) -> list[Chunk]:
    return [chunk async for chunk in backend.run(WorkItem("job_1", task, model, payload))]


async def _error(
    backend: OpenAIUpstreamBackend, task: Task, payload: dict[str, Any], model: str = "fake-model"
) -> BackendError:
    with pytest.raises(BackendError) as caught:
        await _run(backend, task, payload, model)
    return caught.value


async def test_chat_returns_the_upstream_reply_and_usage(backend: OpenAIUpstreamBackend) -> None:
    chunks = await _run(backend, Task.CHAT, {"messages": HELLO, "max_tokens": 16})
    message = {"role": "assistant", "content": "echo: hello there"}
    assert chunks == [
        Output(
            {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]},
            {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
        )
    ]


async def test_chat_stream_yields_deltas_then_the_non_stream_output(backend: OpenAIUpstreamBackend) -> None:
    plain = await _run(backend, Task.CHAT, {"messages": HELLO})
    streamed = await _run(backend, Task.CHAT, {"messages": HELLO, "stream": True})
    deltas = [Delta({"index": 0, "content": piece}) for piece in ("echo:", " hello", " there")]
    assert streamed == [*deltas, plain[0]]


async def test_chat_stream_asks_the_upstream_for_usage(
    backend: OpenAIUpstreamBackend, fake_upstream: FakeUpstream
) -> None:
    await _run(backend, Task.CHAT, {"messages": HELLO, "stream": True})
    body = fake_upstream.last("chat/completions").body
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})


async def test_chat_stream_leaves_the_connection_in_the_pool(
    backend: OpenAIUpstreamBackend, fake_upstream: FakeUpstream
) -> None:
    ports = []
    for _ in range(3):
        await _run(backend, Task.CHAT, {"messages": HELLO, "stream": True})
        ports.append(fake_upstream.last("chat/completions").client_port)
    assert len(set(ports)) == 1


async def test_chat_stream_keeps_usage_when_upstream_sends_it_on_the_finish_chunk(
    backend: OpenAIUpstreamBackend,
) -> None:
    chunks = await _run(
        backend, Task.CHAT, {"messages": HELLO, "stream": True}, model="fake-usage-last-chunk"
    )
    message = {"role": "assistant", "content": "echo: hello there"}
    assert chunks[-1] == Output(
        {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]},
        {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
    )


async def test_chat_forwards_sampling_tools_and_format_but_not_unknown_keys(
    backend: OpenAIUpstreamBackend, fake_upstream: FakeUpstream
) -> None:
    payload = {
        "messages": HELLO,
        "max_tokens": 8,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 20,
        "stop": ["\n"],
        "seed": 7,
        "n": 1,
        "tools": TOOLS,
        "tool_choice": "auto",
        "response_format": {"type": "text"},
        "stream": False,
        "sleep_ms": 10,
        "top_logprobs": None,
    }
    await _run(backend, Task.CHAT, payload)
    expected = {k: v for k, v in payload.items() if k not in ("stream", "sleep_ms", "top_logprobs")}
    assert fake_upstream.last("chat/completions").body == {"model": "fake-model", **expected}


async def test_chat_returns_tool_calls_the_same_streamed_or_not(backend: OpenAIUpstreamBackend) -> None:
    plain = await _run(backend, Task.CHAT, {"messages": HELLO, "tools": TOOLS})
    streamed = await _run(backend, Task.CHAT, {"messages": HELLO, "tools": TOOLS, "stream": True})
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": TOOL_ARGUMENTS}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    assert (
        plain[0]
        == streamed[-1]
        == Output(
            {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]},
            {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
        )
    )
    assert all(isinstance(c, Delta) and "tool_calls" in c.data for c in streamed[:-1])


async def test_completion_returns_text_the_same_streamed_or_not(backend: OpenAIUpstreamBackend) -> None:
    plain = await _run(backend, Task.COMPLETION, {"prompt": "once upon a time", "max_tokens": 3})
    streamed = await _run(
        backend, Task.COMPLETION, {"prompt": "once upon a time", "max_tokens": 3, "stream": True}
    )
    expected = Output(
        {"choices": [{"index": 0, "text": "echo: once upon", "finish_reason": "length"}]},
        {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7},
    )
    deltas = [Delta({"index": 0, "text": piece}) for piece in ("echo:", " once", " upon")]
    assert (plain, streamed) == ([expected], [*deltas, expected])


async def test_embeddings_returns_vectors_and_usage(
    backend: OpenAIUpstreamBackend, fake_upstream: FakeUpstream
) -> None:
    chunks = await _run(backend, Task.EMBEDDINGS, {"input": ["a b", "cde"], "dimensions": 2})
    data = [{"index": 0, "embedding": [3.0, 3.0]}, {"index": 1, "embedding": [3.0, 3.0]}]
    assert chunks == [Output({"data": data}, {"prompt_tokens": 3, "total_tokens": 3})]
    assert fake_upstream.last("embeddings").body["encoding_format"] == "float"


async def test_image_yields_a_blob_per_image_then_the_output(
    backend: OpenAIUpstreamBackend, fake_upstream: FakeUpstream
) -> None:
    payload = {"prompt": "a cat", "width": 8, "height": 4, "num_images": 2, "seed": 3, "steps": 4}
    chunks = await _run(backend, Task.IMAGE, payload)
    png = tiny_png(8, 4)
    images = [
        {"blob": f"image-{i}.png", "width": 8, "height": 4, "content_type": "image/png"} for i in range(2)
    ]
    assert chunks == [
        Blob("image-0.png", "image/png", png),
        Blob("image-1.png", "image/png", png),
        Output({"images": images, "seed": 3}, {"images": 2}),
    ]
    assert fake_upstream.last("images/generations").body == {
        "model": "fake-model",
        "prompt": "a cat",
        "n": 2,
        "response_format": "b64_json",
        "size": "8x4",
        "seed": 3,
        "steps": 4,
    }


async def test_speech_yields_the_audio_blob_then_the_output(backend: OpenAIUpstreamBackend) -> None:
    chunks = await _run(backend, Task.SPEECH, {"input": "hi there", "voice": "alloy", "format": "mp3"})
    audio = {"blob": "speech.mp3", "content_type": "audio/mpeg", "format": "mp3"}
    assert chunks == [
        Blob("speech.mp3", "audio/mpeg", b"ID3hi there"),
        Output({"audio": audio}, {"characters": 8}),
    ]


async def test_transcription_uploads_the_audio_and_returns_the_text(
    backend: OpenAIUpstreamBackend, fake_upstream: FakeUpstream
) -> None:
    audio = b"RIFF\x00\x01fake wav \xff\xfe"
    payload = {
        "audio_b64": base64.b64encode(audio).decode(),
        "filename": "a.wav",
        "content_type": "audio/wav",
        "language": "en",
        "temperature": 0.0,
    }
    chunks = await _run(backend, Task.TRANSCRIPTION, payload)
    assert chunks == [Output({"text": f"heard {len(audio)} bytes of a.wav"})]
    assert fake_upstream.last("audio/transcriptions").body == {
        "fields": {"model": "fake-model", "language": "en", "temperature": "0.0"},
        "filename": "a.wav",
        "content_type": "audio/wav",
        "audio": audio,
    }


async def test_transcription_keeps_segments_when_asked_for_verbose_json(
    backend: OpenAIUpstreamBackend,
) -> None:
    payload = {
        "audio_b64": base64.b64encode(b"abc").decode(),
        "filename": "a.mp3",
        "response_format": "verbose_json",
    }
    chunks = await _run(backend, Task.TRANSCRIPTION, payload)
    text = "heard 3 bytes of a.mp3"
    segments = [{"id": 0, "start": 0.0, "end": 1.5, "text": text}]
    assert chunks == [
        Output({"text": text, "language": "english", "duration": 1.5, "segments": segments}, {"seconds": 1.5})
    ]


async def test_transcription_returns_plain_text_formats_as_text(backend: OpenAIUpstreamBackend) -> None:
    payload = {
        "audio_b64": base64.b64encode(b"abcd").decode(),
        "filename": "a.mp3",
        "response_format": "text",
    }
    assert await _run(backend, Task.TRANSCRIPTION, payload) == [Output({"text": "heard 4 bytes of a.mp3"})]


async def test_transcription_raises_invalid_input_when_audio_is_not_base64(
    backend: OpenAIUpstreamBackend,
) -> None:
    error = await _error(backend, Task.TRANSCRIPTION, {"audio_b64": "not base64!", "filename": "a.wav"})
    assert (error.code, error.retryable) == ("invalid_input", False)


async def test_run_raises_non_retryable_bad_request_when_upstream_answers_400(
    backend: OpenAIUpstreamBackend,
) -> None:
    error = await _error(backend, Task.CHAT, {"max_tokens": 4})
    assert (error.code, error.retryable, error.message) == (
        "upstream_bad_request",
        False,
        "upstream answered 400: 'messages' is a required property",
    )


async def test_run_raises_bad_request_when_upstream_rejects_a_stream(backend: OpenAIUpstreamBackend) -> None:
    error = await _error(backend, Task.COMPLETION, {"stream": True})
    assert (error.code, error.retryable) == ("upstream_bad_request", False)


async def test_run_raises_retryable_error_when_upstream_answers_500(backend: OpenAIUpstreamBackend) -> None:
    error = await _error(backend, Task.CHAT, {"messages": HELLO}, model="fake-500")
    assert (error.code, error.retryable, error.message) == (
        "upstream_error",
        True,
        "upstream answered 500: the engine fell over",
    )


async def test_run_raises_retryable_error_when_upstream_refuses_connections() -> None:
    backend = OpenAIUpstreamBackend(_settings(f"http://127.0.0.1:{unused_port()}/v1"))
    try:
        error = await _error(backend, Task.CHAT, {"messages": HELLO})
    finally:
        await backend.aclose()
    assert (error.code, error.retryable) == ("upstream_unavailable", True)


async def test_run_raises_retryable_timeout_when_upstream_is_too_slow(fake_upstream: FakeUpstream) -> None:
    backend = OpenAIUpstreamBackend(_settings(fake_upstream.url, timeout_seconds=0.1))
    try:
        error = await _error(backend, Task.CHAT, {"messages": HELLO}, model="fake-slow")
    finally:
        await backend.aclose()
    assert (error.code, error.retryable) == ("upstream_timeout", True)


async def test_run_raises_retryable_error_when_the_upstream_key_is_wrong(fake_upstream: FakeUpstream) -> None:
    backend = OpenAIUpstreamBackend(_settings(fake_upstream.url, upstream_api_key="sk-wrong"))
    try:
        error = await _error(backend, Task.EMBEDDINGS, {"input": "x"})
    finally:
        await backend.aclose()
    assert (error.code, error.retryable) == ("upstream_unauthorized", True)


async def test_stream_raises_when_upstream_sends_an_error_event(backend: OpenAIUpstreamBackend) -> None:
    error = await _error(backend, Task.CHAT, {"messages": HELLO, "stream": True}, model="fake-stream-error")
    assert (error.code, error.retryable, error.message) == (
        "upstream_error",
        True,
        "upstream failed mid-stream: the engine fell over",
    )


async def test_stream_raises_retryable_error_when_upstream_hangs_up_early(
    backend: OpenAIUpstreamBackend,
) -> None:
    error = await _error(backend, Task.CHAT, {"messages": HELLO, "stream": True}, model="fake-stream-cut")
    assert (error.code, error.retryable) == ("upstream_incomplete", True)


async def test_run_raises_unsupported_for_a_task_not_offered(fake_upstream: FakeUpstream) -> None:
    backend = OpenAIUpstreamBackend(_settings(fake_upstream.url, options={"tasks": "chat"}))
    try:
        error = await _error(backend, Task.EMBEDDINGS, {"input": "x"})
    finally:
        await backend.aclose()
    assert (error.code, error.retryable) == ("unsupported", False)


async def test_run_raises_unsupported_for_an_unknown_speech_format(backend: OpenAIUpstreamBackend) -> None:
    error = await _error(backend, Task.SPEECH, {"input": "x", "voice": "alloy", "format": "midi"})
    assert (error.code, error.retryable) == ("unsupported", False)


async def test_offers_lists_each_model_with_the_configured_tasks(fake_upstream: FakeUpstream) -> None:
    backend = OpenAIUpstreamBackend(
        _settings(fake_upstream.url, models=("a", "b"), options={"tasks": "chat, embeddings"})
    )
    await backend.aclose()
    tasks = (Task.CHAT, Task.EMBEDDINGS)
    assert backend.offers() == [ModelOffer("a", tasks), ModelOffer("b", tasks)]


def test_parse_tasks_defaults_to_every_forwardable_task() -> None:
    assert parse_tasks(None) == (
        Task.CHAT,
        Task.COMPLETION,
        Task.EMBEDDINGS,
        Task.IMAGE,
        Task.SPEECH,
        Task.TRANSCRIPTION,
    )


def test_parse_tasks_raises_config_error_for_an_unknown_task() -> None:
    with pytest.raises(ConfigError, match=r"cannot forward tasks \['video'\]"):
        parse_tasks("chat,video")


@pytest.mark.parametrize(
    ("overrides", "missing"), [({"upstream_url": None}, "--upstream-url"), ({"models": ()}, "--models")]
)
def test_backend_raises_config_error_when_settings_lack(overrides: dict[str, Any], missing: str) -> None:
    with pytest.raises(ConfigError, match=missing):
        OpenAIUpstreamBackend(_settings("http://127.0.0.1:1/v1", **overrides))
