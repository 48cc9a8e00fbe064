"""Images and chat through the `openai-upstream` backend: SDK → Ferryman → worker → an OpenAI-compatible server.

No image model ships in a package here, so the server at the end is the clearly named test double
`tests/worker/backends/fake_openai_upstream.py`; in production it is vLLM, SGLang, a llama.cpp server or
any other OpenAI-compatible image server (docs/surfaces.md).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.e2e.processes import FerrymanServer
from tests.worker.backends.fake_openai_upstream import API_KEY, FakeUpstream, serve_fake_upstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with serve_fake_upstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def sdk(shared_server: FerrymanServer, upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    shared_server.start_worker(
        region="us",
        backend="openai-upstream",
        models=("upstream-image", "upstream-chat"),
        worker_id="upstream-us",
        extra=["--upstream-url", upstream.url, "--upstream-api-key", API_KEY, "--option", "tasks=chat,image"],
    )
    with openai.OpenAI(
        base_url=f"{shared_server.url}/openai/v1", api_key=shared_server.token, max_retries=0
    ) as client:
        yield client


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_image_generation_through_the_upstream_returns_b64_pngs_of_the_asked_size(
    sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    result = sdk.images.generate(
        model="upstream-image", prompt="a red boat", n=2, size="256x256", response_format="b64_json"
    )
    sizes = [_png_size(base64.b64decode(image.b64_json or "")) for image in result.data or []]
    assert sizes == [(256, 256), (256, 256)]
    assert upstream.last("images/generations").body["prompt"] == "a red boat"


def test_image_generation_through_the_upstream_returns_expiring_ferryman_urls(
    sdk: openai.OpenAI, shared_server: FerrymanServer
) -> None:
    result = sdk.images.generate(
        model="upstream-image", prompt="a blue boat", size="256x256", response_format="url"
    )
    url = (result.data or [])[0].url or ""
    fetched = httpx.get(url)
    assert url.startswith(shared_server.url) and "expires=" in url and "signature=" in url
    assert (fetched.status_code, _png_size(fetched.content)) == (200, (256, 256))
    assert httpx.get(url.replace("signature=", "signature=0")).status_code == 404


def test_chat_through_the_upstream_keeps_its_real_usage(sdk: openai.OpenAI) -> None:
    plain = sdk.chat.completions.create(model="upstream-chat", messages=[{"role": "user", "content": "hi"}])
    streamed = list(
        sdk.chat.completions.create(
            model="upstream-chat",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == plain.choices[0].message.content
    assert streamed[-1].usage == plain.usage and plain.usage is not None and plain.usage.total_tokens > 0
