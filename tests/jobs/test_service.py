from __future__ import annotations

import dataclasses

import anyio
import pytest

from ferryman import protocol as p
from ferryman.clock import FakeClock
from ferryman.container import Container
from ferryman.errors import Conflict, InvalidRequest, NotFound
from ferryman.jobs import Job, JobEvent, JobSpec, JobState, region_of
from ferryman.types import JobId, OrgId, Priority, Region, Task

pytestmark = pytest.mark.anyio

ORG = OrgId("org_a")
SPEC = JobSpec(
    org_id=ORG,
    region=Region.US,
    task=Task.CHAT,
    model="m",
    priority=Priority.INTERACTIVE,
    payload={"prompt": "hi"},
)


async def run_to_success(c: Container, job: Job) -> Job:
    """A worker takes the job and returns a result; returns the finished job."""
    frames: list[str] = []
    node = c.nodes[Region.US]
    worker = node.attach(
        p.Register(worker_id="w1", region="us", slots=1, models=(p.ModelOffer("m", (Task.CHAT,)),)),
        send=frames.append,
        close=lambda: None,
    )
    dispatched = [m for m in map(p.decode_node_message, frames) if isinstance(m, p.JobDispatch)]
    node.handle(worker, p.JobResult(job_id=job.id, fence=dispatched[-1].fence, output={"text": "hello"}))
    return await c.jobs.wait(ORG, job.id, timeout_seconds=2)


async def test_submit_returns_same_job_when_idempotency_key_repeats_with_same_body(
    container: Container,
) -> None:
    spec = dataclasses.replace(SPEC, idempotency_key="key-1", request_digest="digest-1")
    first, _ = await container.jobs.submit(spec)

    again, created = await container.jobs.submit(spec)

    assert (again.id, created) == (first.id, False)


async def test_submit_stores_one_job_when_idempotency_key_repeats(container: Container) -> None:
    spec = dataclasses.replace(SPEC, idempotency_key="key-1", request_digest="digest-1")
    await container.jobs.submit(spec)
    await container.jobs.submit(spec)

    page = await container.jobs.find_page(
        ORG, Region.US, cursor=None, limit=10, state=None, task=None, model=None
    )

    assert len(page.jobs) == 1


async def test_submit_raises_conflict_when_idempotency_key_repeats_with_other_body(
    container: Container,
) -> None:
    await container.jobs.submit(dataclasses.replace(SPEC, idempotency_key="key-1", request_digest="digest-1"))

    with pytest.raises(Conflict, match="Idempotency-Key was already used with a different request body"):
        await container.jobs.submit(
            dataclasses.replace(SPEC, idempotency_key="key-1", request_digest="digest-2")
        )


async def test_submit_creates_separate_jobs_when_other_org_uses_same_idempotency_key(
    container: Container,
) -> None:
    spec = dataclasses.replace(SPEC, idempotency_key="key-1", request_digest="digest-1")
    mine, _ = await container.jobs.submit(spec)

    theirs, created = await container.jobs.submit(dataclasses.replace(spec, org_id=OrgId("org_b")))

    assert (created, theirs.id != mine.id) == (True, True)


async def test_submit_raises_not_found_when_model_is_unknown(container: Container) -> None:
    with pytest.raises(NotFound, match="model 'nope' is not served in region us"):
        await container.jobs.submit(dataclasses.replace(SPEC, model="nope"))


async def test_submit_raises_invalid_request_when_model_does_not_serve_task(container: Container) -> None:
    with pytest.raises(
        InvalidRequest, match=r"model 'm' does not serve task 'embeddings'; it serves \['chat'\]"
    ):
        await container.jobs.submit(dataclasses.replace(SPEC, task=Task.EMBEDDINGS))


async def test_submit_raises_invalid_request_when_region_is_not_served(container: Container) -> None:
    with pytest.raises(InvalidRequest, match="region 'eu' is not served here"):
        await container.jobs.submit(dataclasses.replace(SPEC, region=Region.EU))


async def test_submit_raises_invalid_request_when_webhook_points_at_loopback(container: Container) -> None:
    with pytest.raises(
        InvalidRequest, match="webhook URL points at a private, loopback or link-local address"
    ):
        await container.jobs.submit(dataclasses.replace(SPEC, webhook_url="http://127.0.0.1:9/hook"))


async def test_submit_returns_queued_job_with_default_deadline_of_its_class(
    container: Container,
    clock: FakeClock,
) -> None:
    job, created = await container.jobs.submit(dataclasses.replace(SPEC, priority=Priority.BATCH))

    assert (created, job) == (
        True,
        Job(
            id=job.id,
            org_id=ORG,
            region=Region.US,
            task=Task.CHAT,
            model="m",
            priority=Priority.BATCH,
            state=JobState.QUEUED,
            created_at=clock.now(),
            deadline_at=clock.now() + 86400.0,
        ),
    )


async def test_get_raises_not_found_for_job_of_another_org(container: Container) -> None:
    job, _ = await container.jobs.submit(SPEC)

    with pytest.raises(NotFound, match=f"job '{job.id}' not found"):
        await container.jobs.get(OrgId("org_b"), job.id)


@pytest.mark.parametrize("job_id", ["nonsense", "job_mars_01abc", "job_eu_01abc", "job_us_01abc"])
async def test_get_raises_not_found_for_unknown_job_id(container: Container, job_id: str) -> None:
    with pytest.raises(NotFound, match="not found"):
        await container.jobs.get(ORG, job_id)


async def test_cancel_raises_conflict_when_job_already_ended(container: Container) -> None:
    job, _ = await container.jobs.submit(SPEC)
    await run_to_success(container, job)

    with pytest.raises(Conflict, match=f"job {job.id} already ended as succeeded; nothing to cancel"):
        await container.jobs.cancel(ORG, job.id)


async def test_wait_returns_finished_job_with_result(container: Container) -> None:
    job, _ = await container.jobs.submit(SPEC)

    finished = await run_to_success(container, job)

    assert (finished.state, finished.result) == (JobState.SUCCEEDED, {"text": "hello"})


async def test_wait_returns_job_as_it_stands_when_timeout_passes(container: Container) -> None:
    job, _ = await container.jobs.submit(SPEC)

    waited = await container.jobs.wait(ORG, job.id, timeout_seconds=0.01)

    assert (waited.id, waited.state) == (job.id, JobState.QUEUED)


async def test_wait_returns_at_once_when_finished_job_stream_was_swept(
    container: Container,
    clock: FakeClock,
) -> None:
    job, _ = await container.jobs.submit(SPEC)
    await run_to_success(container, job)
    clock.advance(601)
    container.nodes[Region.US].tick()  # forgets the finished job's event stream

    with anyio.fail_after(1):
        waited = await container.jobs.wait(ORG, job.id, timeout_seconds=5)

    assert (waited.state, waited.result) == (JobState.SUCCEEDED, {"text": "hello"})


async def test_follow_yields_only_done_when_finished_job_stream_was_swept(
    container: Container,
    clock: FakeClock,
) -> None:
    job, _ = await container.jobs.submit(SPEC)
    await run_to_success(container, job)
    clock.advance(601)
    container.nodes[Region.US].tick()

    events = [event async for event in await container.jobs.follow(ORG, job.id, after=7)]

    assert events == [JobEvent(8, "done", {"state": "succeeded"})]


@pytest.mark.parametrize(
    ("job_id", "region"),
    [
        ("job_us_01abc", Region.US),
        ("job_eu_01abc", Region.EU),
        ("job_mars_01abc", None),
        ("job_us", None),
        ("task_us_01abc", None),
        ("", None),
    ],
)
def test_region_of_reads_region_from_job_id(job_id: str, region: Region | None) -> None:
    assert region_of(JobId(job_id)) == region
