"""A job whose stored result cannot be handed out (written before frames were held to limits) stays readable."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ferryman.api.native.schemas import job_view
from ferryman.container import Container
from ferryman.jobs import JobSpec, JobState
from ferryman.types import JobId, OrgId, Priority, Region, Task

pytestmark = pytest.mark.anyio


def nested(levels: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(levels):
        value = {"d": value}
    return value


async def test_job_with_a_result_nested_900_deep_in_the_store_reads_as_failed_invalid_output(
    container: Container,
) -> None:
    org = OrgId("org_deep")
    job, _ = await container.jobs.submit(
        JobSpec(
            org_id=org, region=Region.US, task=Task.CHAT, model="m", priority=Priority.INTERACTIVE, payload={}
        )
    )
    repo = container.jobs._repos[Region.US]
    await container.nodes[Region.US].cancel(
        job.id
    )  # ended; now overwrite its row as an old server would have
    await repo.finish(dataclasses.replace(job, state=JobState.SUCCEEDED), result=nested(900))

    for _ in range(2):
        read = await repo.get(org, JobId(job.id))
        assert read is not None
        assert (read.state, read.result) == (JobState.FAILED, None)
        assert read.error is not None and read.error.code == "invalid_output"
        json.dumps(job_view(read))  # and it renders
