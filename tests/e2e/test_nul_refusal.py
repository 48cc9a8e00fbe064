"""A NUL character anywhere a client can put text (path, query, JSON body, multipart field) is refused with a
400 in the surface's own error format, on SQLite and on PostgreSQL (which cannot store NUL in text and used to
answer 500), and the keep-alive connection it came on serves the next request."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.capabilities import POSTGRES, require
from tests.e2e.processes import FerrymanServer

PG = "127.0.0.1"
NUL_CHAT = {"model": "echo-1", "messages": [{"role": "user", "content": "a\u0000b"}]}


async def _pg(statements: list[str]) -> None:
    admin = await asyncpg.connect(host=PG, database="test", timeout=3)
    try:
        for statement in statements:
            await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerrymanServer]:
    """`ferryman serve` on PostgreSQL stores (global and region), with an echo worker."""
    names = {kind: f"ferryman_{kind}_{secrets.token_hex(4)}" for kind in ("global", "us")}
    try:
        asyncio.run(_pg([f'CREATE DATABASE "{name}"' for name in names.values()]))
    except (OSError, asyncpg.PostgresError) as exc:
        require(POSTGRES, f"PostgreSQL is not reachable at {PG}:5432 ({exc}); .ci/run starts it")
    env = {
        "FERRYMAN_REGIONS": '["us"]',
        "FERRYMAN_GLOBAL_DATABASE_URL": f"postgresql+asyncpg://{PG}/{names['global']}",
        "FERRYMAN_REGION_DATABASE_URLS": f'{{"us": "postgresql+asyncpg://{PG}/{names["us"]}"}}',
    }
    server = FerrymanServer(tmp_path_factory.mktemp("pg-nul"), env=env)
    try:
        server.start()
        server.start_worker(region="us", worker_id="pg-nul-us")
        yield server
    finally:
        server.stop()
        asyncio.run(_pg([f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names.values()]))


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest) -> FerrymanServer:
    name = "shared_server" if request.param == "sqlite" else "pg_server"
    found: FerrymanServer = request.getfixturevalue(name)
    return found


def native(body: Any) -> str:
    return str(body["error"]["code"])


def openai_format(body: Any) -> str:
    return f"{body['error']['type']}/{body['error']['code']}"


def anthropic_format(body: Any) -> str:
    return f"{body['type']}/{body['error']['type']}"


def fal_format(body: Any) -> str:
    return str(body["error_type"])


Case = tuple[str, str, dict[str, Any], Callable[[Any], str], str]
CASES: dict[str, Case] = {
    "native path": ("GET", "/v1/jobs/job_us_a%00b", {}, native, "validation_error"),
    "native query": ("GET", "/v1/jobs?model=a%00b", {}, native, "validation_error"),
    "native events path": ("GET", "/v1/jobs/job_us_a%00b/events", {}, native, "validation_error"),
    "native body": (
        "POST",
        "/v1/jobs",
        {"json": {"task": "chat", "model": "echo-1", "input": {"messages": NUL_CHAT["messages"]}}},
        native,
        "validation_error",
    ),
    "openai path": (
        "GET",
        "/openai/v1/models/echo%00",
        {},
        openai_format,
        "invalid_request_error/nul_character",
    ),
    "openai body": (
        "POST",
        "/openai/v1/chat/completions",
        {"json": NUL_CHAT},
        openai_format,
        "invalid_request_error/nul_character",
    ),
    "openai multipart field": (
        "POST",
        "/openai/v1/audio/transcriptions",
        {"data": {"model": "echo\x00"}, "files": {"file": ("a.wav", b"RIFF\x00\x00")}},
        openai_format,
        "invalid_request_error/nul_character",
    ),
    "anthropic query": (
        "GET",
        "/anthropic/v1/models?after_id=%00",
        {},
        anthropic_format,
        "error/invalid_request_error",
    ),
    "anthropic body": (
        "POST",
        "/anthropic/v1/messages",
        {"json": {**NUL_CHAT, "max_tokens": 4}},
        anthropic_format,
        "error/invalid_request_error",
    ),
    "fal path": ("GET", "/fal/echo-1/requests/job_us_a%00b/status", {}, fal_format, "nul_character"),
    "fal query": (
        "POST",
        "/fal/echo-1?fal_webhook=%00",
        {"json": {"prompt": "x"}},
        fal_format,
        "nul_character",
    ),
    "fal body": ("POST", "/fal/echo-1", {"json": {"prompt": "a\u0000b"}}, fal_format, "nul_character"),
}


def local_port(response: httpx.Response) -> int:
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


@pytest.mark.parametrize("case", CASES)
def test_nul_is_a_400_in_the_surfaces_format_and_the_connection_lives_on(
    server: FerrymanServer, case: str
) -> None:
    method, path, kwargs, error_format, expected = CASES[case]
    headers = {"Authorization": f"Bearer {server.token}", "x-api-key": server.token}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        refused = client.request(method, path, **kwargs)
        refused_on = local_port(refused)
        after = client.get("/openai/v1/models")  # on the same keep-alive connection
        after_on = local_port(after)
    assert (refused.status_code, error_format(refused.json()), "nul" in refused.text.lower()) == (
        400,
        expected,
        True,
    )
    assert (after.status_code, after_on, refused.headers.get("connection")) == (200, refused_on, None)


def test_a_refused_nul_job_leaves_no_record(pg_server: FerrymanServer) -> None:
    with pg_server.client() as client:
        before = client.get("/v1/jobs", params={"limit": 100}).json()["data"]
        refused = client.post(
            "/v1/jobs",
            json={"task": "chat", "model": "echo-1", "input": {"messages": NUL_CHAT["messages"]}},
            headers={"Idempotency-Key": "nul-test"},
        )
        after = client.get("/v1/jobs", params={"limit": 100}).json()["data"]
    assert (refused.status_code, len(after)) == (400, len(before))


def test_an_escaped_backslash_before_u0000_is_text_not_nul(shared_server: FerrymanServer) -> None:
    """`"\\\\u0000"` in JSON is a backslash and the letters u0000: no NUL, so it is served."""
    with httpx.Client(base_url=shared_server.url, timeout=30) as client:
        reply = client.post(
            "/openai/v1/chat/completions",
            content=b'{"model": "echo-1", "messages": [{"role": "user", "content": "C:\\\\u0000"}]}',
            headers={"Authorization": f"Bearer {shared_server.token}", "Content-Type": "application/json"},
        )
    assert (reply.status_code, reply.json()["choices"][0]["message"]["content"]) == (200, "C:\\u0000")


def test_a_raw_nul_in_a_header_is_refused_by_the_server_with_connection_close(
    shared_server: FerrymanServer,
) -> None:
    """A NUL byte in a header is not HTTP: the server answers 400 and says it closes, so no client is reset."""
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=10) as sock:
        sock.sendall(b"GET /openai/v1/models HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x00b\r\n\r\n")
        head = sock.recv(4096).split(b"\r\n\r\n")[0].lower()
    assert (head.split(b"\r\n")[0], b"connection: close" in head) == (b"http/1.1 400 bad request", True)


ERROR_ANSWERS: dict[str, tuple[str, str, dict[str, Any], int]] = {
    "invalid json": ("POST", "/anthropic/v1/messages", {"content": b"{not json"}, 400),
    "unknown token": ("GET", "/openai/v1/models", {"headers": {"Authorization": "Bearer fm_wrong"}}, 401),
    "not found": ("GET", "/fal/echo-1/requests/job_us_nope", {}, 404),
    "method": ("PATCH", "/anthropic/v1/models", {}, 405),
    "failed job": (
        "POST",
        "/openai/v1/chat/completions",
        {"json": {**NUL_CHAT, "messages": [{"role": "user", "content": "x"}], "fail": {"code": "boom"}}},
        502,
    ),
}


@pytest.mark.parametrize("answer", ERROR_ANSWERS)
def test_every_error_answer_keeps_the_connection(server: FerrymanServer, answer: str) -> None:
    method, path, kwargs, status = ERROR_ANSWERS[answer]
    with server.client() as client:
        refused = client.request(method, path, **kwargs)
        refused_on = local_port(refused)
        after = client.get("/openai/v1/models")
        after_on = local_port(after)
    assert (refused.status_code, after.status_code, after_on) == (status, 200, refused_on)
