"""A real PostgreSQL region store goes away for a few seconds under a running `ferryman serve` with jobs in
flight: no job stays stuck, and requests during the outage get 503 with Retry-After in each surface's format.

The outage is confined to this test's own database, so tests sharing the PostgreSQL cluster are not disturbed:
`ALTER DATABASE … ALLOW_CONNECTIONS false` (which binds superusers too) refuses new connections and
`pg_terminate_backend` drops the server's open ones: to Ferryman it is what a restarting server looks like
(connections lost, then refused). It is lifted in a `finally`, whatever happens.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import asyncpg
import httpx
import openai
import pytest

from tests.e2e.processes import FerrymanServer, wait_until

PG = "127.0.0.1"
JOBS = 12
WORK_MS = 1200  # long enough that every job finishes while the store is away


def _admin(sql: str) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(host=PG, database="test", timeout=3)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture
def region_db() -> Iterator[str]:
    try:
        _admin("SELECT 1")
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG}:5432 ({exc}); .ci/run starts it")
    name = f"ferryman_outage_{secrets.token_hex(4)}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _take_down(name: str) -> None:
    _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


def _bring_back(name: str) -> None:
    _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def _metric(server: FerrymanServer, name: str, labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    found = re.search(rf"^{name}\{{{labels}\}} ([0-9.e+]+)$", text, re.M)
    assert found, f"no {name}{{{labels}}} in /metrics:\n" + "\n".join(
        line for line in text.splitlines() if name in line
    )
    return float(found.group(1))


def _assert_503(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    body: dict[str, Any] = response.json()
    return body


def test_jobs_in_flight_survive_a_region_store_outage_and_requests_meanwhile_get_503(
    make_server: Callable[..., FerrymanServer], region_db: str
) -> None:
    server = make_server(
        {"FERRYMAN_REGION_DATABASE_URLS": f'{{"us": "postgresql+asyncpg://{PG}/{region_db}"}}'}
    )
    server.start_worker(region="us", slots=JOBS, worker_id="outage-us")
    with server.client(timeout=15) as api:
        submitted = [
            api.post(
                "/v1/jobs",
                json={
                    "task": "chat",
                    "model": "echo-1",
                    "input": {"prompt": f"job {i}", "sleep_ms": WORK_MS},
                },
            )
            for i in range(JOBS)
        ]
        assert [r.status_code for r in submitted] == [202] * JOBS
        ids = [r.json()["id"] for r in submitted]
        down_at = time.monotonic()
        try:
            _take_down(region_db)
            # a read of a job the node holds is answered from memory
            held = api.get(f"/v1/jobs/{ids[0]}")
            assert held.status_code == 200 and held.json()["status"] in ("queued", "dispatched", "running")
            # what only the store can answer is 503 too, not 500
            for path in ("/v1/jobs/job_us_01notheldbythenode0000000", "/v1/jobs"):
                assert _assert_503(api.get(path))["error"]["code"] == "storage_unavailable"
            # a new job cannot be recorded: each surface answers 503 + Retry-After in its own format
            native = _assert_503(api.post("/v1/jobs", json={"task": "chat", "model": "echo-1", "input": {}}))
            assert native["error"]["code"] == "storage_unavailable"
            fal = _assert_503(api.post("/fal/echo-1", json={"prompt": "a ferry"}))
            assert fal["error_type"] == "storage_unavailable"
            with (
                openai.OpenAI(
                    base_url=f"{server.url}/openai/v1", api_key=server.token, max_retries=0
                ) as client,
                pytest.raises(openai.APIStatusError) as oa,
            ):
                client.chat.completions.create(model="echo-1", messages=[{"role": "user", "content": "hi"}])
            assert oa.value.status_code == 503 and int(oa.value.response.headers["retry-after"]) >= 1
            assert oa.value.code == "storage_unavailable"
            with (
                anthropic.Anthropic(
                    base_url=f"{server.url}/anthropic", api_key=server.token, max_retries=0
                ) as claude,
                pytest.raises(anthropic.APIStatusError) as an,
            ):
                claude.messages.create(
                    model="echo-1", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
                )
            assert an.value.status_code == 503 and int(an.value.response.headers["retry-after"]) >= 1
            assert an.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
            # keep the store away until every job has finished on the worker and failed to record its outcome
            time.sleep(max(0.0, WORK_MS / 1000 + 1.0 - (time.monotonic() - down_at)))
            assert _metric(server, "ferryman_unwritten_outcomes", 'region="us"') > 0
        finally:
            _bring_back(region_db)
        wait_until(
            lambda: all(api.get(f"/v1/jobs/{i}").json()["status"] == "succeeded" for i in ids),
            timeout_s=30,
            what="every job to be recorded as succeeded after the store came back",
            log=server.log,
        )
        assert _metric(server, "ferryman_outcome_write_failures_total", 'kind="outage",region="us"') > 0
        # the two sync jobs refused above are written too (as failed) once their backoff comes round
        wait_until(
            lambda: _metric(server, "ferryman_unwritten_outcomes", 'region="us"') == 0,
            timeout_s=15,
            what="no outcome left unwritten",
        )
        # recorded in the store itself, not only answered from memory
        rows = _admin_rows(region_db, ids)
        assert rows == {i: "succeeded" for i in ids}
        # and the server answers normally again
        after = api.post(
            "/v1/jobs", json={"task": "chat", "model": "echo-1", "wait": 10, "input": {"prompt": "x"}}
        )
        assert after.status_code == 200 and after.json()["status"] == "succeeded"
    assert "Traceback" not in server.log.read_text()


def _admin_rows(name: str, ids: list[str]) -> dict[str, str]:
    async def run() -> dict[str, str]:
        conn = await asyncpg.connect(host=PG, database=name, timeout=3)
        try:
            rows = await conn.fetch("SELECT id, state FROM jobs WHERE id = ANY($1::text[])", ids)
            return {r["id"]: r["state"] for r in rows}
        finally:
            await conn.close()

    return asyncio.run(run())
