"""The same stores on PostgreSQL (the scaled-out configuration): a job's whole life through the real container."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from ferryman import protocol as p
from ferryman.config import Settings
from ferryman.container import Container, open_container
from ferryman.jobs import JobSpec, JobState
from ferryman.types import OrgId, Priority, Region, Task
from tests.capabilities import POSTGRES, require

PG = "127.0.0.1"
pytestmark = pytest.mark.anyio


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(host=PG, database="test", timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        require(POSTGRES, f"not reachable at {PG}:5432 ({exc}); .ci/run starts it")


@pytest.fixture
async def pg_container(tmp_path: Path) -> AsyncIterator[Container]:
    names = {kind: f"ferryman_{kind}_{secrets.token_hex(4)}" for kind in ("global", "us")}
    admin = await _admin()
    try:
        for name in names.values():
            await admin.execute(f'CREATE DATABASE "{name}"')
        settings = Settings(
            data_dir=tmp_path,
            regions=["us"],
            global_database_url=f"postgresql+asyncpg://{PG}/{names['global']}",
            region_database_urls={"us": f"postgresql+asyncpg://{PG}/{names['us']}"},
        )
        async with open_container(settings) as container:
            yield container
    finally:
        for name in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_job_runs_to_success_on_postgres_stores(pg_container: Container) -> None:
    node = pg_container.nodes[Region.US]
    frames: list[str] = []
    worker = node.attach(
        p.Register(worker_id="w1", region="us", models=(p.ModelOffer("m", (Task.CHAT,)),), slots=1),
        send=frames.append,
        close=lambda: None,
    )
    org = OrgId("org_pg")
    job, created = await pg_container.jobs.submit(
        JobSpec(
            org_id=org,
            region=Region.US,
            task=Task.CHAT,
            model="m",
            priority=Priority.INTERACTIVE,
            payload={"messages": [{"role": "user", "content": "hi"}]},
            idempotency_key="k1",
            request_digest="d1",
        )
    )
    dispatch = p.decode_node_message(frames[-1])
    assert isinstance(dispatch, p.JobDispatch)
    node.handle(
        worker,
        p.JobResult(job_id=job.id, fence=dispatch.fence, output={"text": "hello"}, usage={"total_tokens": 2}),
    )
    done = await pg_container.jobs.wait(org, job.id, timeout_seconds=5)
    await asyncio.sleep(0)
    again, created_again = await pg_container.jobs.submit(
        JobSpec(
            org_id=org,
            region=Region.US,
            task=Task.CHAT,
            model="m",
            priority=Priority.INTERACTIVE,
            payload={},
            idempotency_key="k1",
            request_digest="d1",
        )
    )
    stored, _ = await pg_container.jobs.get(org, job.id)
    assert (created, done.state, done.result) == (True, JobState.SUCCEEDED, {"text": "hello"})
    assert (created_again, again.id) == (False, job.id)
    assert (stored.state, stored.result, stored.usage, stored.attempts) == (
        JobState.SUCCEEDED,
        {"text": "hello"},
        {"total_tokens": 2},
        1,
    )
