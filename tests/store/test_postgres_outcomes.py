"""Outcomes PostgreSQL would refuse for what they hold (a NUL in a backend's error text) still end their job."""

from __future__ import annotations

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

PG = "127.0.0.1"
pytestmark = pytest.mark.anyio


@pytest.fixture
async def pg_container(tmp_path: Path) -> AsyncIterator[tuple[Container, str]]:
    try:
        admin = await asyncpg.connect(host=PG, database="test", timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG}:5432 ({exc}); .ci/run starts it")
    name = f"ferryman_nul_{secrets.token_hex(4)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        settings = Settings(
            data_dir=tmp_path,
            regions=["us"],
            region_database_urls={"us": f"postgresql+asyncpg://{PG}/{name}"},
        )
        async with open_container(settings) as container:
            yield container, name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_backend_error_text_with_nul_fails_the_job_and_stays_readable(
    pg_container: tuple[Container, str],
) -> None:
    container, name = pg_container
    node = container.nodes[Region.US]
    frames: list[str] = []
    worker = node.attach(
        p.Register(worker_id="w1", region="us", models=(p.ModelOffer("m", (Task.CHAT,)),), slots=1),
        send=frames.append,
        close=lambda: None,
    )
    org = OrgId("org_nul")
    job, _ = await container.jobs.submit(
        JobSpec(
            org_id=org, region=Region.US, task=Task.CHAT, model="m", priority=Priority.INTERACTIVE, payload={}
        )
    )
    dispatch = p.decode_node_message(frames[-1])
    assert isinstance(dispatch, p.JobDispatch)
    node.handle(
        worker,
        p.JobError(
            job_id=job.id, fence=dispatch.fence, code="bad\x00code", message="tokenizer choked on \x00 here"
        ),
    )
    done = await container.jobs.wait(org, job.id, timeout_seconds=5)
    assert done.state is JobState.FAILED
    conn = await asyncpg.connect(host=PG, database=name, timeout=3)
    try:
        row = await conn.fetchrow("SELECT state, error_code FROM jobs WHERE id = $1", job.id)
    finally:
        await conn.close()
    assert row is not None and (row["state"], row["error_code"]) == ("failed", "worker_error")
    assert done.error is not None and "bad\x00code" in done.error.message  # the owner's answer is unchanged
