"""A sync request whose job the store refuses to insert: the client is told the store failed (503
`storage_unavailable`, `Retry-After`) in its surface's own format, not that it cancelled the job, and nothing ran.

The refusal is real: a SQLite trigger on the region's `jobs` table (installed from outside, as a full disk or a
broken volume would) makes every job insert fail while `ferryman serve` keeps running. Sync requests (native
`wait`, OpenAI and Anthropic without streaming) queue the job while its insert commits, so the failure arrives after
the job was queued: this is the path that must not look like a cancellation.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anthropic
import openai

from tests.e2e.processes import FerrymanServer

Make = Callable[..., FerrymanServer]
MESSAGES = [{"role": "user", "content": "hello store"}]


@contextmanager
def store_refusing_job_inserts(server: FerrymanServer, region: str = "us") -> Iterator[None]:
    db = sqlite3.connect(server.data_dir / "regions" / region / "region.db", timeout=10)
    try:
        db.execute(
            "CREATE TRIGGER refuse_job_inserts BEFORE INSERT ON jobs "
            "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
        )
        db.commit()
        yield
    finally:
        db.execute("DROP TRIGGER IF EXISTS refuse_job_inserts")
        db.commit()
        db.close()


def _job_count(server: FerrymanServer) -> int:
    with server.client() as api:
        return len(api.get("/v1/jobs", params={"limit": 100}).json()["data"])


def test_sync_requests_whose_insert_fails_answer_storage_unavailable_on_every_surface(
    make_server: Make,
) -> None:
    server = make_server()
    server.start_worker(region="us", slots=2)
    sync_job = {"task": "chat", "model": "echo-1", "input": {"messages": MESSAGES}, "wait": 20}
    with server.client() as api:
        assert api.post("/v1/jobs", json=sync_job).json()["status"] == "succeeded"  # the path works
    stored = _job_count(server)
    with (
        openai.OpenAI(
            base_url=f"{server.url}/openai/v1", api_key=server.token, max_retries=0, timeout=30
        ) as oai,
        anthropic.Anthropic(
            base_url=f"{server.url}/anthropic", api_key=server.token, max_retries=0, timeout=30
        ) as ant,
    ):
        _check_surfaces(server, oai, ant, sync_job, stored)


def _check_surfaces(
    server: FerrymanServer,
    openai_sdk: openai.OpenAI,
    anthropic_sdk: anthropic.Anthropic,
    sync_job: dict[str, object],
    stored: int,
) -> None:
    with store_refusing_job_inserts(server):
        with server.client() as api:
            native = api.post("/v1/jobs", json=sync_job)
        try:
            openai_sdk.chat.completions.create(model="echo-1", messages=MESSAGES)  # type: ignore[arg-type]
            raise AssertionError("the OpenAI call should have failed")
        except openai.APIStatusError as exc:
            from_openai = exc
        try:
            anthropic_sdk.messages.create(model="echo-1", max_tokens=16, messages=MESSAGES)  # type: ignore[arg-type]
            raise AssertionError("the Anthropic call should have failed")
        except anthropic.APIStatusError as exc:
            from_anthropic = exc

    assert (native.status_code, native.headers.get("retry-after"), native.json()["error"]["code"]) == (
        503,
        "2",
        "storage_unavailable",
    )
    assert "cancel" not in native.text
    assert isinstance(from_openai, openai.InternalServerError)
    assert (from_openai.status_code, from_openai.response.headers.get("retry-after")) == (503, "2")
    assert (from_openai.code, from_openai.type) == ("storage_unavailable", "server_error")
    assert isinstance(from_anthropic, anthropic.InternalServerError)
    assert (from_anthropic.status_code, from_anthropic.response.headers.get("retry-after")) == (503, "2")
    assert from_anthropic.response.json()["error"]["type"] == "overloaded_error"
    assert all("cancel" not in str(exc) for exc in (from_openai, from_anthropic))
    assert _job_count(server) == stored  # nothing half-written: no record of the refused jobs

    # the store takes jobs again: the same requests succeed
    completion = openai_sdk.chat.completions.create(model="echo-1", messages=MESSAGES)  # type: ignore[arg-type]
    assert completion.choices[0].message.content
    assert _job_count(server) == stored + 1
