"""The OpenAI-compatible surface driven with the official `openai` SDK against a real server and real workers."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.processes import FerrymanServer, wait_until

HELLO = [{"role": "user", "content": "hello brave new world"}]


@pytest.fixture(scope="module")
def client(shared_server: FerrymanServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{shared_server.url}/openai/v1", api_key=shared_server.token, max_retries=0
    ) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def speech_server(shared_server: FerrymanServer) -> FerrymanServer:
    """The shared server plus the real speech engines: espeak-ng (speech) and pocketsphinx (transcription)."""
    shared_server.start_worker(region="us", backend="espeak", models=("espeak-ng",), worker_id="espeak-us")
    shared_server.start_worker(
        region="us", backend="pocketsphinx", models=("pocketsphinx-en-us",), worker_id="sphinx-us"
    )
    return shared_server


def test_chat_completion_returns_message_and_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="echo-1", messages=HELLO)  # type: ignore[arg-type]
    assert (reply.object, reply.model, reply.choices[0].message.content, reply.choices[0].finish_reason) == (
        "chat.completion",
        "echo-1",
        "hello brave new world",
        "stop",
    )
    assert reply.usage is not None
    assert reply.usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 4,
        "completion_tokens": 4,
        "total_tokens": 8,
    }


def test_chat_stream_joins_to_the_plain_answer_with_identical_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="echo-1",
        messages=HELLO,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
        max_tokens=3,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    plain = client.chat.completions.create(model="echo-1", messages=HELLO, max_tokens=3)  # type: ignore[arg-type]
    assert (text, finish, chunks[-1].choices, chunks[-1].usage) == (
        plain.choices[0].message.content,
        ["length"],
        [],
        plain.usage,
    )


def test_chat_stream_that_fails_mid_way_raises_instead_of_truncating(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="echo-1",
        messages=HELLO,
        stream=True,  # type: ignore[arg-type]
        extra_body={"fail": {"code": "engine_crashed"}},
    )
    with pytest.raises(openai.APIError, match="engine_crashed: echo was asked to fail"):
        list(stream)


def test_completion_returns_text(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="echo-1", prompt="once upon a time", max_tokens=2)
    assert (
        reply.choices[0].text,
        reply.choices[0].finish_reason,
        reply.usage and reply.usage.total_tokens,
    ) == ("once upon", "length", 6)


def test_embeddings_decode_the_same_as_float_and_base64(client: openai.OpenAI) -> None:
    as_base64 = client.embeddings.create(model="echo-1", input=["one two", "three"], dimensions=4)
    as_float = client.embeddings.create(
        model="echo-1", input=["one two", "three"], dimensions=4, encoding_format="float"
    )
    assert [[round(v, 5) for v in d.embedding] for d in as_base64.data] == [
        [round(v, 5) for v in d.embedding] for d in as_float.data
    ]
    assert ([len(d.embedding) for d in as_float.data], as_float.usage.model_dump()) == (
        [4, 4],
        {"prompt_tokens": 3, "total_tokens": 3},
    )


def test_images_come_as_signed_urls_or_inline_base64(client: openai.OpenAI) -> None:
    by_url = client.images.generate(model="echo-1", prompt="a ferry", n=2, size="256x256")
    inline = client.images.generate(model="echo-1", prompt="a ferry", response_format="b64_json")
    assert by_url.data is not None and inline.data is not None
    fetched = [httpx.get(str(image.url), timeout=10) for image in by_url.data]
    assert [(r.status_code, r.content) for r in fetched] == [(200, b"echo image 0"), (200, b"echo image 1")]
    assert base64.b64decode(str(inline.data[0].b64_json)) == b"echo image 0"


def test_signed_url_with_a_forged_signature_is_not_found(client: openai.OpenAI) -> None:
    image = client.images.generate(model="echo-1", prompt="a ferry").data
    assert image is not None
    forged = str(image[0].url).rsplit("signature=", 1)[0] + "signature=" + "0" * 64
    assert httpx.get(forged, timeout=10).json() == {
        "error": {"code": "not_found", "message": "media not found or link expired"}
    }


def _probe(audio: bytes) -> str:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", "pipe:0"],
        input=audio,
        capture_output=True,
        timeout=30,
        check=True,
    )
    return out.stdout.decode().strip()


@pytest.mark.parametrize(
    ("audio_format", "codec"),
    [("mp3", "mp3"), ("opus", "opus"), ("aac", "aac"), ("flac", "flac"), ("wav", "pcm_s16le")],
)
def test_speech_from_espeak_decodes_as_the_asked_format(
    speech_server: FerrymanServer, client: openai.OpenAI, audio_format: Any, codec: str
) -> None:
    audio = client.audio.speech.create(
        model="espeak-ng", voice="alloy", input="Ferryman speaks.", response_format=audio_format
    )
    assert _probe(audio.content) == codec


def test_speech_as_pcm_is_raw_24khz_samples(speech_server: FerrymanServer, client: openai.OpenAI) -> None:
    audio = client.audio.speech.create(model="espeak-ng", voice="nova", input="one", response_format="pcm")
    assert (audio.response.headers["content-type"], len(audio.content) % 2, len(audio.content) > 4800) == (
        "audio/pcm",
        0,
        True,
    )


def test_transcription_of_spoken_speech_returns_text(
    speech_server: FerrymanServer, client: openai.OpenAI
) -> None:
    spoken = client.audio.speech.create(
        model="espeak-ng", voice="alloy", input="hello world", response_format="wav"
    ).content
    verbose = client.audio.transcriptions.create(
        model="pocketsphinx-en-us", file=("hello.wav", spoken), response_format="verbose_json"
    )
    # pocketsphinx hears espeak's robot voice poorly: the proof is real audio in, real engine text out
    assert (verbose.language, 0.5 < verbose.duration < 3, isinstance(verbose.text, str)) == ("en", True, True)


def test_models_list_and_get(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ("echo-1" in ids, client.models.retrieve("echo-1").model_dump(exclude_none=True)) == (
        True,
        {"id": "echo-1", "object": "model", "created": 0, "owned_by": "ferryman"},
    )


def test_async_request_is_accepted_then_polled_through_the_queue_urls(
    shared_server: FerrymanServer, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="echo-1",
        messages=HELLO,  # type: ignore[arg-type]
        extra_body={"async": True},
    )
    accepted = raw.http_response.json()
    headers = {"Authorization": f"Key {shared_server.token}"}
    wait_until(
        lambda: httpx.get(accepted["status_url"], headers=headers).json()["status"] == "COMPLETED",
        timeout_s=10,
        what="async job",
    )
    result = httpx.get(accepted["response_url"], headers=headers).json()
    assert (raw.http_response.status_code, result["output"], result["usage"]["total_tokens"]) == (
        202,
        "hello brave new world",
        8,
    )


def test_errors_raise_the_sdk_exception_of_their_status(
    shared_server: FerrymanServer, client: openai.OpenAI
) -> None:
    base = f"{shared_server.url}/openai/v1"
    raised = []
    for call in (
        lambda: openai.OpenAI(base_url=base, api_key="fm_not_a_token", max_retries=0).models.list(),
        lambda: client.models.retrieve("no-such-model"),
        lambda: client.chat.completions.create(model="echo-1", messages=[]),
        lambda: client.chat.completions.create(
            model="echo-1",
            messages=HELLO,  # type: ignore[arg-type]
            extra_body={"fail": {"code": "boom"}},
        ),
        lambda: client.chat.completions.create(
            model="echo-1",
            messages=HELLO,  # type: ignore[arg-type]
            extra_body={"fail": {"code": "unsupported"}},
        ),
    ):
        with pytest.raises(openai.APIStatusError) as info:
            call()
        raised.append((type(info.value).__name__, info.value.status_code))
    assert raised == [
        ("AuthenticationError", 401),
        ("NotFoundError", 404),
        ("BadRequestError", 400),
        ("InternalServerError", 502),
        ("BadRequestError", 400),
    ]


def test_error_body_has_openai_shape(shared_server: FerrymanServer) -> None:
    resp = httpx.post(
        f"{shared_server.url}/openai/v1/chat/completions",
        json={"model": "echo-1"},
        headers={"Authorization": f"Bearer {shared_server.token}"},
    )
    assert (resp.status_code, resp.json()) == (
        400,
        {
            "error": {
                "message": "messages: Field required",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "validation_error",
            }
        },
    )


def test_token_without_the_scope_raises_permission_denied(shared_server: FerrymanServer) -> None:
    with shared_server.client() as api:
        created = api.post(
            "/v1/tokens", json={"name": "reader", "scopes": ["jobs:read"], "expires_in_days": 1}
        )
    assert created.status_code == 201
    with openai.OpenAI(
        base_url=f"{shared_server.url}/openai/v1", api_key=created.json()["secret"], max_retries=0
    ) as reader:
        with pytest.raises(openai.PermissionDeniedError) as raised:
            reader.chat.completions.create(model="echo-1", messages=HELLO)  # type: ignore[arg-type]
    assert raised.value.status_code == 403
    assert raised.value.body == {
        "message": "this token lacks the 'jobs:write' scope",
        "type": "permission_error",
        "param": None,
        "code": "forbidden",
    }


def test_full_backlog_raises_rate_limit_error(make_server: Any) -> None:
    server: FerrymanServer = make_server({"FERRYMAN_BACKLOG_CAP": "1"})
    seeder = server.start_worker()  # registers the model, then leaves: jobs queue up
    seeder.terminate()
    seeder.wait(timeout=10)
    with openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key=server.token, max_retries=0) as sdk:
        first = sdk.with_options(timeout=1).chat.completions.with_raw_response
        with pytest.raises(openai.APITimeoutError):
            first.create(model="echo-1", messages=HELLO)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as raised:
            sdk.chat.completions.create(model="echo-1", messages=HELLO)  # type: ignore[arg-type]
    assert raised.value.status_code == 429
    assert raised.value.response.headers["retry-after"] == "5"
