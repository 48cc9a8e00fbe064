"""An outcome the store does not take is retried until it commits; the job stays readable and its waiters are
answered. The store's refusals here come from a test double (`RefusingFinish`) wrapped around the real
repository's `finish`; tests/e2e/test_store_outage.py does the same against a real PostgreSQL going away."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError, StatementError

from ferryman import protocol as p
from ferryman.errors import StorageUnavailable
from ferryman.jobs import Job, JobFailure, JobState
from ferryman.types import JobId
from tests.dispatch.harness import QUIET_NODE, NodeHarness, open_harness

pytestmark = pytest.mark.anyio

FAST_RETRY = dataclasses.replace(
    QUIET_NODE,
    outcome_retry_first_seconds=0.01,
    outcome_retry_max_seconds=0.05,
    cancel_commit_wait_seconds=0.2,
)


class RefusingFinish:
    """Test double: the repository's `finish` raises `error` for its first `times` calls, then writes."""

    def __init__(self, real: Any, error: Exception, times: int) -> None:
        self.real, self.error, self.left, self.calls = real, error, times, 0

    async def __call__(self, job: Job, *, result: dict[str, Any] | None) -> bool:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise self.error
        written: bool = await self.real(job, result=result)
        return written


def outage() -> OperationalError:
    return OperationalError("UPDATE jobs", {}, ConnectionRefusedError("connection refused"))


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[NodeHarness]:
    async with open_harness(tmp_path, settings=FAST_RETRY) as harness:
        yield harness


def metric(h: NodeHarness, name: str, **labels: str) -> float:
    value = h.registry.get_sample_value(name, {"region": "us", **labels})
    return value or 0.0


async def until(check: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_outcome_refused_three_times_is_retried_until_committed_and_waiters_are_answered(
    h: NodeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = RefusingFinish(h.repo.finish, outage(), times=3)
    monkeypatch.setattr(h.repo, "finish", refusing)
    worker = h.attach("w1")
    job = await h.submit()
    await h.settle()
    waiter = asyncio.create_task(h.service.wait(job.org_id, job.id, timeout_seconds=5))
    stream = asyncio.create_task(_kinds(h, job))
    fence = worker.dispatch_of(job.id).fence
    h.send(worker, p.JobAccepted(job_id=job.id, fence=fence))
    h.send(worker, p.JobResult(job_id=job.id, fence=fence, output={"text": "hello"}))

    await until(lambda: refusing.calls >= 2)
    # while the store refuses, the job is answered from memory as it stood, not as a stale row or an error
    seen, _ = await h.service.get(job.org_id, job.id)
    assert seen.state is JobState.RUNNING
    assert not waiter.done()

    done = await asyncio.wait_for(waiter, 5)
    assert (done.state, done.result) == (JobState.SUCCEEDED, {"text": "hello"})
    assert (await asyncio.wait_for(stream, 5))[-1] == "done"
    assert refusing.calls == 4
    row = await h.repo.get(job.org_id, JobId(job.id))
    assert row is not None and (row.state, row.result) == (JobState.SUCCEEDED, {"text": "hello"})
    assert metric(h, "ferryman_outcome_write_failures_total", kind="outage") == 3
    assert h.node.snapshot()["unwritten_outcomes"] == 0
    assert h.node.live_job(JobId(job.id)) is None


async def _kinds(h: NodeHarness, job: Job) -> list[str]:
    return [event.kind async for event in await h.service.follow(job.org_id, job.id)]


async def test_outcome_the_store_rejects_for_its_content_is_recorded_as_unstorable_failure(
    h: NodeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    rejected = StatementError("value out of range", "UPDATE jobs", {}, ValueError("out of range"))
    refusing = RefusingFinish(h.repo.finish, rejected, times=1)
    monkeypatch.setattr(h.repo, "finish", refusing)
    worker = h.attach("w1")
    job = await h.submit()
    fence = worker.dispatch_of(job.id).fence
    h.send(worker, p.JobResult(job_id=job.id, fence=fence, output={"text": "hello"}))

    done = await h.service.wait(job.org_id, job.id, timeout_seconds=5)
    row = await h.repo.get(job.org_id, JobId(job.id))
    assert row is not None
    for ended in (done, row):
        assert ended.state is JobState.FAILED
        assert ended.error is not None and ended.error.code == "outcome_unstorable"
        assert ended.result is None
    assert metric(h, "ferryman_outcome_write_failures_total", kind="refused") == 1


async def test_unwritten_outcome_is_counted_in_the_gauge_while_the_store_refuses(
    h: NodeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = RefusingFinish(h.repo.finish, outage(), times=10_000)
    monkeypatch.setattr(h.repo, "finish", refusing)
    worker = h.attach("w1")
    job = await h.submit()
    fence = worker.dispatch_of(job.id).fence
    h.send(worker, p.JobResult(job_id=job.id, fence=fence, output={"text": "hello"}))
    await until(lambda: refusing.calls >= 3)
    assert h.node.snapshot()["unwritten_outcomes"] == 1
    assert metric(h, "ferryman_outcome_write_failures_total", kind="outage") >= 2
    refusing.left = 0  # the store is back
    done = await h.service.wait(job.org_id, job.id, timeout_seconds=5)
    assert done.state is JobState.SUCCEEDED
    assert h.node.snapshot()["unwritten_outcomes"] == 0


async def test_cancel_during_an_outage_answers_storage_unavailable_and_is_recorded_later(
    h: NodeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = RefusingFinish(h.repo.finish, outage(), times=10_000)
    monkeypatch.setattr(h.repo, "finish", refusing)
    job = await h.submit()
    await h.settle()
    with pytest.raises(StorageUnavailable) as raised:
        await h.service.cancel(job.org_id, job.id)
    assert raised.value.details == {"retry_after_seconds": 2}
    refusing.left = 0
    done = await h.service.wait(job.org_id, job.id, timeout_seconds=5)
    assert done.state is JobState.CANCELLED


async def test_sync_job_whose_insert_the_store_refused_answers_its_waiter_storage_unavailable(
    h: NodeHarness,
) -> None:
    job = await h.submit()
    h.node.abandon(JobId(job.id), JobFailure("storage_unavailable", "the store did not take the job"))
    with pytest.raises(StorageUnavailable):
        await h.service.wait(job.org_id, job.id, timeout_seconds=1)


async def test_node_stop_gives_up_an_outcome_still_waiting_for_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_harness(tmp_path, settings=FAST_RETRY) as h:
        refusing = RefusingFinish(h.repo.finish, outage(), times=10_000)
        monkeypatch.setattr(h.repo, "finish", refusing)
        worker = h.attach("w1")
        job = await h.submit()
        fence = worker.dispatch_of(job.id).fence
        h.send(worker, p.JobResult(job_id=job.id, fence=fence, output={"text": "hello"}))
        await until(lambda: refusing.calls >= 2)
        await asyncio.wait_for(h.node.stop(), 2)  # does not wait for a store that is not coming back
        row = await h.repo.get(job.org_id, JobId(job.id))
        assert row is not None and not row.state.is_terminal  # a restart re-queues it


async def test_outcome_of_a_job_the_store_never_took_is_not_announced_as_success(h: NodeHarness) -> None:
    """A sync job is queued while its insert commits; if that insert failed, its result has no row to land in,
    and the waiter is told the store did not take the job instead of getting an answer nothing recorded."""
    worker = h.attach("w1", slots=2)
    job = dataclasses.replace(await h.submit(), id=JobId("job_us_never_inserted"))
    h.node.enqueue(job, {"prompt": "hi"})  # queued, but no insert of it was ever written
    fence = worker.dispatch_of(job.id).fence
    h.send(worker, p.JobResult(job_id=job.id, fence=fence, output={"text": "hello"}))
    with pytest.raises(StorageUnavailable):
        await h.service.wait(job.org_id, job.id, timeout_seconds=5)
    assert await h.repo.get(job.org_id, job.id) is None


async def test_sync_wait_that_ends_while_the_outcome_is_unwritten_answers_storage_unavailable(
    h: NodeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = RefusingFinish(h.repo.finish, outage(), times=10_000)
    monkeypatch.setattr(h.repo, "finish", refusing)
    worker = h.attach("w1")
    job = await h.submit()
    fence = worker.dispatch_of(job.id).fence
    h.send(worker, p.JobResult(job_id=job.id, fence=fence, output={"text": "hello"}))
    await until(lambda: refusing.calls >= 1)
    with pytest.raises(StorageUnavailable, match="has ended"):
        await h.service.wait(job.org_id, job.id, timeout_seconds=0.2)
    refusing.left = 0
    assert (await h.service.wait(job.org_id, job.id, timeout_seconds=5)).state is JobState.SUCCEEDED
