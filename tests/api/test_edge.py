"""The edge guards in isolation: a bug's 500 keeps the keep-alive connection (over real HTTP, uvicorn as
`ferryman serve` runs it), and the JSON NUL-escape scan tells `\\u0000` from an escaped backslash."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse

from ferryman.api.edge import has_json_nul_escape
from ferryman.api.openai import render
from ferryman.api.signed_urls import UrlSigner
from ferryman.api.surface_app import create_surface_app
from tests.e2e.processes import free_port, wait_until

buggy = APIRouter()


@buggy.get("/bug")
async def bug() -> PlainTextResponse:
    raise RuntimeError("a bug in a route (this router is a test double standing in for one)")


@buggy.get("/fine")
async def fine() -> PlainTextResponse:
    return PlainTextResponse("fine")


async def _nobody(_: Request) -> None:
    return None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A surface app built by the real create_surface_app (OpenAI's renderer) under a real uvicorn."""
    app = create_surface_app(
        title="test",
        routers=[buggy],
        render_error=render.render_error,
        error_schema=render.ERROR_SCHEMA,
        authenticate=_nobody,
        signer=UrlSigner(tmp_path / "key"),
        max_body_bytes=1024,
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout_s=20, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_bugs_500_keeps_the_connection_for_the_next_request(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:
        failed = client.get("/bug")
        failed_on = failed.extensions["network_stream"].get_extra_info("client_addr")[1]
        after = client.get("/fine")
        after_on = after.extensions["network_stream"].get_extra_info("client_addr")[1]
    assert (failed.status_code, failed.json()["error"]["type"], "RuntimeError" in failed.text) == (
        500,
        "server_error",
        False,
    )
    assert (after.status_code, after.text, after_on) == (200, "fine", failed_on)


def test_an_unsupported_method_is_a_405_with_allow(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:
        answer = client.delete("/fine")
    assert (answer.status_code, answer.headers.get("allow"), answer.json()["error"]["code"]) == (
        405,
        "GET",
        "method_not_allowed",
    )


@pytest.mark.parametrize(
    ("body", "has_nul"),
    [
        (b'{"a": "x\\u0000"}', True),
        (b'{"a": "\\\\\\u0000"}', True),  # an escaped backslash, then the escape
        (b'{"a": "\\\\u0000"}', False),  # an escaped backslash, then the letters u0000
        (b'{"a": "\\\\u0000 and \\u0000"}', True),
        (b'{"a": "\\u00001"}', True),
        (b'{"a": "\\u0001"}', False),
        (b'{"a": "plain"}', False),
    ],
)
def test_json_nul_escape_scan(body: bytes, has_nul: bool) -> None:
    assert has_json_nul_escape(body) is has_nul
