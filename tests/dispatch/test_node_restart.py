"""A queue node restarted on the same store loses nothing acknowledged (through the real app container)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryman import protocol as p
from ferryman.clock import FakeClock
from ferryman.config import Settings
from ferryman.container import open_container
from ferryman.dispatch import QueueNode
from ferryman.jobs import Job, JobService, JobSpec, JobState
from ferryman.types import OrgId, Priority, Region, Task
from tests.dispatch.harness import FakeWorker

pytestmark = pytest.mark.anyio

ORG = OrgId("org_restart")
STALE = "this job is no longer yours; drop it"


def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, regions=["us"], lease_check_interval_seconds=3600.0)


def attach(node: QueueNode, worker_id: str, *, slots: int = 1) -> FakeWorker:
    frames: list[str] = []
    register = p.Register(
        worker_id=worker_id, region="us", slots=slots, models=(p.ModelOffer("m", (Task.CHAT,)),)
    )
    return FakeWorker(conn=node.attach(register, send=frames.append, close=lambda: None), frames=frames)


async def submit(service: JobService) -> Job:
    job, _ = await service.submit(
        JobSpec(
            org_id=ORG,
            region=Region.US,
            task=Task.CHAT,
            model="m",
            priority=Priority.INTERACTIVE,
            payload={"prompt": "hi"},
        )
    )
    return job


async def test_restart_puts_queued_job_back_in_queue(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_container(settings(tmp_path), clock=clock) as c:
        node = c.nodes[Region.US]
        node.detach(attach(node, "w1").conn)  # the model is known, but no worker serves it now
        job = await submit(c.jobs)

    async with open_container(settings(tmp_path), clock=clock) as c:
        worker = attach(c.nodes[Region.US], "w1")

        assert [(d.job_id, d.attempt, d.payload) for d in worker.dispatches()] == [
            (job.id, 1, {"prompt": "hi"})
        ]


async def test_restart_requeues_running_job_with_new_fence(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_container(settings(tmp_path), clock=clock) as c:
        node = c.nodes[Region.US]
        before = attach(node, "w1")
        job = await submit(c.jobs)
        old_fence = before.dispatch_of(job.id).fence
        node.handle(before.conn, p.JobAccepted(job_id=job.id, fence=old_fence))

    async with open_container(settings(tmp_path), clock=clock) as c:
        stored, info = await c.jobs.get(ORG, job.id)

        assert (stored.state, stored.attempts, stored.fence > old_fence, info is not None) == (
            JobState.QUEUED,
            1,
            True,
            True,
        )


async def test_restart_redispatches_running_job_with_higher_fence(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_container(settings(tmp_path), clock=clock) as c:
        node = c.nodes[Region.US]
        before = attach(node, "w1")
        job = await submit(c.jobs)
        old_fence = before.dispatch_of(job.id).fence
        node.handle(before.conn, p.JobAccepted(job_id=job.id, fence=old_fence))

    async with open_container(settings(tmp_path), clock=clock) as c:
        after = attach(c.nodes[Region.US], "w1")
        dispatched = after.dispatch_of(job.id)

        assert (dispatched.attempt, dispatched.fence > old_fence) == (2, True)


async def test_restart_refuses_result_with_fence_from_before_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_container(settings(tmp_path), clock=clock) as c:
        node = c.nodes[Region.US]
        before = attach(node, "w1")
        job = await submit(c.jobs)
        old_fence = before.dispatch_of(job.id).fence

    async with open_container(settings(tmp_path), clock=clock) as c:
        node = c.nodes[Region.US]
        after = attach(node, "w1")

        node.handle(after.conn, p.JobResult(job_id=job.id, fence=old_fence, output={"text": "from before"}))

        assert (after.after_registered()[-1], (await c.jobs.get(ORG, job.id))[0].state) == (
            p.ErrorMessage(code="stale_fence", message=STALE, job_id=job.id, fence=old_fence),
            JobState.DISPATCHED,
        )


async def test_restart_keeps_result_of_job_finished_before_it(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_container(settings(tmp_path), clock=clock) as c:
        node = c.nodes[Region.US]
        worker = attach(node, "w1")
        job = await submit(c.jobs)
        node.handle(
            worker.conn,
            p.JobResult(job_id=job.id, fence=worker.dispatch_of(job.id).fence, output={"text": "done"}),
        )

    async with open_container(settings(tmp_path), clock=clock) as c:
        stored, info = await c.jobs.get(ORG, job.id)

        assert (stored.state, stored.result, info) == (JobState.SUCCEEDED, {"text": "done"}, None)
