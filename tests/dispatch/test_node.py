from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ferryman import protocol as p
from ferryman.clock import FakeClock
from ferryman.errors import BacklogFull
from ferryman.jobs import Job, JobFailure, JobState, QueueInfo, Timings
from ferryman.types import JobId, OrgId, Priority
from tests.dispatch.harness import MODEL, ORG, OTHER_MODEL, QUIET_NODE, NodeHarness, open_harness

pytestmark = pytest.mark.anyio

T0 = FakeClock().now()
STALE = "this job is no longer yours; drop it"


def job_frame(job: Job, *, fence: int, attempt: int = 1) -> p.JobDispatch:
    return p.JobDispatch(
        job_id=job.id,
        attempt=attempt,
        fence=fence,
        lease_seconds=30.0,
        task="chat",
        model=MODEL,
        payload={"prompt": "hi"},
    )


def outcomes(h: NodeHarness) -> list[tuple[str, JobState, JobFailure | None]]:
    return [(job.id, job.state, job.error) for job in h.finished]


async def stored(h: NodeHarness, job: Job) -> Job:
    found = await h.repo.get(job.org_id, JobId(job.id))
    assert found is not None
    return found


@pytest.fixture
async def capped(tmp_path: Path) -> AsyncIterator[NodeHarness]:
    async with open_harness(tmp_path, settings=dataclasses.replace(QUIET_NODE, backlog_cap=2)) as h:
        yield h


# -- matching


async def test_dispatch_sends_job_to_least_loaded_worker_serving_its_model(harness: NodeHarness) -> None:
    busy = harness.attach("busy", slots=2)
    first = await harness.submit()
    await harness.settle()
    idle = harness.attach("idle", slots=2)
    other = harness.attach("other", models=(OTHER_MODEL,), slots=4)

    second = await harness.submit()
    await harness.settle()

    assert (busy.after_registered(), idle.after_registered(), other.after_registered()) == (
        [job_frame(first, fence=busy.dispatch_of(first.id).fence)],
        [job_frame(second, fence=idle.dispatch_of(second.id).fence)],
        [],
    )


async def test_attach_dispatches_queued_job_to_new_worker(harness: NodeHarness) -> None:
    job = await harness.submit()

    worker = harness.attach("w1")
    await harness.settle()

    assert worker.messages() == [
        p.Registered(worker_id="w1", lease_seconds=30.0),
        job_frame(job, fence=worker.dispatch_of(job.id).fence),
    ]


async def test_queue_info_reports_no_worker_for_model_when_none_serves_it(harness: NodeHarness) -> None:
    harness.attach("w1", models=(OTHER_MODEL,))
    job = await harness.submit()

    assert (await harness.service.get(ORG, job.id))[1] == QueueInfo(0, "no_worker_for_model", None)


async def test_queue_info_reports_all_workers_busy_when_every_slot_is_taken(harness: NodeHarness) -> None:
    harness.attach("w1")
    await harness.submit()
    waiting = await harness.submit()
    await harness.settle()

    assert (await harness.service.get(ORG, waiting.id))[1] == QueueInfo(0, "all_workers_busy", None)


async def test_queue_info_reports_workers_draining_when_every_worker_drains(harness: NodeHarness) -> None:
    worker = harness.attach("w1")
    harness.send(worker, p.Drain())
    job = await harness.submit()

    assert (await harness.service.get(ORG, job.id))[1] == QueueInfo(0, "workers_draining", None)


async def test_queued_jobs_are_dispatched_by_priority_class_when_a_slot_frees(harness: NodeHarness) -> None:
    worker = harness.attach("w1")
    await harness.submit()
    await harness.settle()
    batch = await harness.submit(priority=Priority.BATCH)
    background = await harness.submit(priority=Priority.ASYNC)
    interactive = await harness.submit(priority=Priority.INTERACTIVE)

    for _ in range(3):
        current = worker.dispatches()[-1]
        harness.send(worker, p.JobResult(job_id=current.job_id, fence=current.fence, output={}))
        await harness.settle()

    assert [d.job_id for d in worker.dispatches()[1:]] == [interactive.id, background.id, batch.id]


async def test_queued_jobs_are_shared_fairly_between_orgs(harness: NodeHarness) -> None:
    worker = harness.attach("w1")
    await harness.submit(org=OrgId("org_big"))
    await harness.settle()
    for _ in range(5):
        await harness.submit(org=OrgId("org_big"))
    small = await harness.submit(org=OrgId("org_small"))

    for _ in range(2):
        current = worker.dispatches()[-1]
        harness.send(worker, p.JobResult(job_id=current.job_id, fence=current.fence, output={}))
        await harness.settle()

    assert small.id in [d.job_id for d in worker.dispatches()[1:3]]


async def test_submit_raises_backlog_full_when_class_queue_is_at_cap(capped: NodeHarness) -> None:
    await capped.submit()
    await capped.submit()

    with pytest.raises(BacklogFull, match="the interactive queue of 'm' in us holds 2 jobs"):
        await capped.submit()


async def test_submit_admits_other_class_when_one_class_queue_is_at_cap(capped: NodeHarness) -> None:
    await capped.submit()
    await capped.submit()

    job = await capped.submit(priority=Priority.BATCH)

    assert (await stored(capped, job)).state is JobState.QUEUED


# -- results and fences


async def test_job_result_with_current_fence_stores_succeeded_job_with_result(harness: NodeHarness) -> None:
    worker = harness.attach("w1")
    job = await harness.submit()
    await harness.settle()
    fence = worker.dispatch_of(job.id).fence
    harness.clock.advance(1)
    harness.send(worker, p.JobAccepted(job_id=job.id, fence=fence))
    harness.clock.advance(1)

    harness.send(
        worker,
        p.JobResult(job_id=job.id, fence=fence, output={"text": "hello"}, usage={"tokens": 3}, work_ms=5.0),
    )
    await harness.settle()

    expected = dataclasses.replace(
        job,
        state=JobState.SUCCEEDED,
        attempts=1,
        fence=fence,
        worker_id="w1",
        result={"text": "hello"},
        usage={"tokens": 3},
        dispatched_at=T0,
        started_at=T0 + 1,
        finished_at=T0 + 2,
        timings=Timings(wait_ms=0.0, worker_rtt_ms=1995.0, work_ms=5.0),
    )
    assert (await stored(harness, job), await harness.service.get(ORG, job.id)) == (
        expected,
        (expected, None),
    )


async def test_job_result_is_refused_as_stale_when_job_already_succeeded(harness: NodeHarness) -> None:
    worker = harness.attach("w1")
    job = await harness.submit()
    await harness.settle()
    fence = worker.dispatch_of(job.id).fence
    harness.send(worker, p.JobResult(job_id=job.id, fence=fence, output={"text": "first"}))
    await harness.settle()

    harness.send(worker, p.JobResult(job_id=job.id, fence=fence, output={"text": "second"}))
    await harness.settle()

    assert (outcomes(harness), worker.after_registered()[-1], (await stored(harness, job)).result) == (
        [(job.id, JobState.SUCCEEDED, None)],
        p.ErrorMessage(code="stale_fence", message=STALE, job_id=job.id, fence=fence),
        {"text": "first"},
    )


async def test_job_result_is_refused_when_sent_by_worker_not_holding_job(harness: NodeHarness) -> None:
    holder = harness.attach("holder")
    job = await harness.submit()
    await harness.settle()
    intruder = harness.attach("intruder")

    harness.send(intruder, p.JobResult(job_id=job.id, fence=holder.dispatch_of(job.id).fence, output={}))
    await harness.settle()

    assert (outcomes(harness), intruder.after_registered(), len(holder.dispatches())) == (
        [],
        [
            p.ErrorMessage(
                code="stale_fence", message=STALE, job_id=job.id, fence=holder.dispatch_of(job.id).fence
            )
        ],
        1,
    )


async def test_lease_expiry_cancels_on_worker_and_redispatches_with_new_fence(harness: NodeHarness) -> None:
    lapsed = harness.attach("lapsed")
    job = await harness.submit()
    await harness.settle()
    fence = lapsed.dispatch_of(job.id).fence
    fresh = harness.attach("fresh")

    harness.clock.advance(31)
    harness.node.tick()
    await harness.settle()

    assert (lapsed.after_registered(), fresh.after_registered()) == (
        [job_frame(job, fence=fence), p.JobCancel(job_id=job.id, fence=fence, reason="lease_expired")],
        [job_frame(job, attempt=2, fence=fence + 2)],
    )


async def test_lease_is_renewed_by_progress(harness: NodeHarness) -> None:
    worker = harness.attach("w1")
    job = await harness.submit()
    await harness.settle()
    fence = worker.dispatch_of(job.id).fence
    harness.send(worker, p.JobAccepted(job_id=job.id, fence=fence))

    for _ in range(3):
        harness.clock.advance(20)
        harness.send(worker, p.JobProgress(job_id=job.id, fence=fence, progress=0.5))
        harness.node.tick()
    await harness.settle()

    live = harness.node.live_job(JobId(job.id))
    assert (worker.after_registered(), live and live.state) == (
        [job_frame(job, fence=fence)],
        JobState.RUNNING,
    )


async def test_job_result_with_old_fence_is_refused_after_lease_expiry(harness: NodeHarness) -> None:
    lapsed = harness.attach("lapsed")
    job = await harness.submit()
    await harness.settle()
    fence = lapsed.dispatch_of(job.id).fence
    fresh = harness.attach("fresh")
    harness.clock.advance(31)
    harness.node.tick()
    await harness.settle()

    harness.send(lapsed, p.JobResult(job_id=job.id, fence=fence, output={"text": "late"}))
    await harness.settle()

    live = harness.node.live_job(JobId(job.id))
    assert live is not None
    assert (lapsed.after_registered()[-1], outcomes(harness), live.state, live.fence, live.worker_id) == (
        p.ErrorMessage(code="stale_fence", message=STALE, job_id=job.id, fence=fence),
        [],
        JobState.DISPATCHED,
        fence + 2,
        fresh.id,
    )


async def test_job_result_with_new_fence_succeeds_after_lease_expiry(harness: NodeHarness) -> None:
    lapsed = harness.attach("lapsed")
    job = await harness.submit()
    await harness.settle()
    fence = lapsed.dispatch_of(job.id).fence
    fresh = harness.attach("fresh")
    harness.clock.advance(31)
    harness.node.tick()
    await harness.settle()
    harness.send(lapsed, p.JobResult(job_id=job.id, fence=fence, output={"text": "late"}))

    harness.send(
        fresh, p.JobResult(job_id=job.id, fence=fresh.dispatch_of(job.id).fence, output={"text": "fresh"})
    )
    await harness.settle()

    assert (outcomes(harness), (await stored(harness, job)).result) == (
        [(job.id, JobState.SUCCEEDED, None)],
        {"text": "fresh"},
    )


async def test_detach_requeues_held_job_with_new_fence(harness: NodeHarness) -> None:
    worker = harness.attach("w1")
    job = await harness.submit()
    await harness.settle()
    fence = worker.dispatch_of(job.id).fence

    harness.node.detach(worker.conn)
    await harness.settle()

    assert await stored(harness, job) == dataclasses.replace(
        job, attempts=1, fence=fence + 1, worker_id=None, crashed_workers=("w1",), dispatched_at=T0
    )


async def test_detach_redispatches_held_job_to_next_worker_with_new_fence(harness: NodeHarness) -> None:
    crashed = harness.attach("crashed")
    job = await harness.submit()
    await harness.settle()
    fence = crashed.dispatch_of(job.id).fence
    harness.node.detach(crashed.conn)

    successor = harness.attach("successor")
    await harness.settle()

    assert successor.after_registered() == [job_frame(job, attempt=2, fence=fence + 2)]


async def test_job_fails_as_poison_when_it_crashes_distinct_workers(harness: NodeHarness) -> None:
    job = await harness.submit()

    for name in ("w1", "w2", "w3"):
        worker = harness.attach(name)
        await harness.settle()
        harness.node.detach(worker.conn)
    await harness.settle()

    assert outcomes(harness) == [
        (job.id, JobState.FAILED, JobFailure("poison", "job crashed 3 distinct workers; not retried"))
    ]


async def test_job_is_not_poison_when_the_same_worker_crashes_repeatedly(harness: NodeHarness) -> None:
    job = await harness.submit()

    for _ in range(3):
        worker = harness.attach("w1")
        await harness.settle()
        harness.node.detach(worker.conn)
    await harness.settle()

    assert (outcomes(harness), (await stored(harness, job)).state) == ([], JobState.QUEUED)


async def test_job_fails_when_it_runs_out_of_attempts(harness: NodeHarness) -> None:
    worker = harness.attach("w1")
    job = await harness.submit()

    for _ in range(5):
        await harness.settle()
        current = worker.dispatches()[-1]
        harness.send(
            worker,
            p.JobError(
                job_id=job.id, fence=current.fence, code="oom", message="out of memory", retryable=True
            ),
        )
    await harness.settle()

    assert outcomes(harness) == [(job.id, JobState.FAILED, JobFailure("worker_error", "oom: out of memory"))]


async def test_retryable_job_error_requeues_job_with_new_fence(harness: NodeHarness) -> None:
    worker = harness.attach("w1")
    job = await harness.submit()
    await harness.settle()
    fence = worker.dispatch_of(job.id).fence

    harness.send(
        worker, p.JobError(job_id=job.id, fence=fence, code="oom", message="out of memory", retryable=True)
    )
    await harness.settle()

    assert (worker.after_registered(), outcomes(harness)) == (
        [job_frame(job, fence=fence), job_frame(job, attempt=2, fence=fence + 2)],
        [],
    )


async def test_retryable_job_error_retries_on_another_worker_when_one_is_free(harness: NodeHarness) -> None:
    failing = harness.attach("failing")
    job = await harness.submit()
    await harness.settle()
    fence = failing.dispatch_of(job.id).fence
    other = harness.attach("other")

    harness.send(
        failing, p.JobError(job_id=job.id, fence=fence, code="oom", message="out of memory", retryable=True)
    )
    await harness.settle()

    assert (failing.after_registered(), other.after_registered()) == (
        [job_frame(job, fence=fence)],
        [job_frame(job, attempt=2, fence=fence + 2)],
    )


async def test_non_retryable_job_error_fails_job_with_worker_error(harness: NodeHarness) -> None:
    worker = harness.attach("w1")
    job = await harness.submit()
    await harness.settle()

    harness.send(
        worker,
        p.JobError(
            job_id=job.id, fence=worker.dispatch_of(job.id).fence, code="bad_input", message="prompt too long"
        ),
    )
    await harness.settle()

    failure = JobFailure("worker_error", "bad_input: prompt too long")
    assert (outcomes(harness), (await stored(harness, job)).error) == (
        [(job.id, JobState.FAILED, failure)],
        failure,
    )


# -- cancel and deadlines


async def test_cancel_of_queued_job_returns_cancelled_job(harness: NodeHarness) -> None:
    job = await harness.submit()

    cancelled = await harness.service.cancel(ORG, job.id)

    # a job never dispatched keeps the fence its node gave it on arrival (the node's epoch base)
    assert dataclasses.replace(cancelled, fence=0) == dataclasses.replace(
        job,
        state=JobState.CANCELLED,
        finished_at=T0,
        error=JobFailure("cancelled", "cancelled by the client"),
    )


async def test_cancel_of_queued_job_keeps_it_from_being_dispatched(harness: NodeHarness) -> None:
    job = await harness.submit()
    await harness.service.cancel(ORG, job.id)

    worker = harness.attach("w1")
    await harness.settle()

    assert (worker.after_registered(), (await stored(harness, job)).state) == ([], JobState.CANCELLED)


async def test_cancel_of_running_job_sends_job_cancel_to_its_worker(harness: NodeHarness) -> None:
    worker = harness.attach("w1")
    job = await harness.submit()
    await harness.settle()
    fence = worker.dispatch_of(job.id).fence
    harness.send(worker, p.JobAccepted(job_id=job.id, fence=fence))

    cancelled = await harness.service.cancel(ORG, job.id)
    await harness.settle()

    assert (cancelled.state, worker.after_registered(), (await stored(harness, job)).state) == (
        JobState.CANCELLED,
        [job_frame(job, fence=fence), p.JobCancel(job_id=job.id, fence=fence, reason="cancelled")],
        JobState.CANCELLED,
    )


async def test_deadline_expires_job_still_queued(harness: NodeHarness) -> None:
    job = await harness.submit(deadline_seconds=10)

    harness.clock.advance(11)
    harness.node.tick()
    await harness.settle()

    assert dataclasses.replace(await stored(harness, job), fence=0) == dataclasses.replace(
        job,
        state=JobState.EXPIRED,
        finished_at=T0 + 11,
        error=JobFailure("expired", "no worker started the job before its deadline"),
    )


async def test_deadline_fails_running_job_with_timeout(harness: NodeHarness) -> None:
    worker = harness.attach("w1")
    job = await harness.submit(deadline_seconds=10)
    await harness.settle()
    fence = worker.dispatch_of(job.id).fence
    harness.send(worker, p.JobAccepted(job_id=job.id, fence=fence))

    harness.clock.advance(11)
    harness.node.tick()
    await harness.settle()

    assert (outcomes(harness), worker.after_registered()) == (
        [(job.id, JobState.FAILED, JobFailure("timeout", "the job ran past its deadline"))],
        [job_frame(job, fence=fence), p.JobCancel(job_id=job.id, fence=fence, reason="timeout")],
    )


async def test_deadline_leaves_job_alone_before_it_passes(harness: NodeHarness) -> None:
    job = await harness.submit(deadline_seconds=10)

    harness.clock.advance(9)
    harness.node.tick()
    await harness.settle()

    assert (outcomes(harness), (await stored(harness, job)).state) == ([], JobState.QUEUED)
