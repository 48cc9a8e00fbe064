"""Completion observers: one ordered list, told after the outcome and its usage event commit, never in the way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ferryman import protocol as p
from ferryman.clock import FakeClock
from ferryman.jobs import Completions, Job, JobState, OnFinished
from ferryman.types import JobId, OrgId, Priority, Region, Task
from tests.dispatch.harness import NodeHarness, open_harness

pytestmark = pytest.mark.anyio


class Broken:
    """Test double: an observer with a bug."""

    def job_finished(self, job: Job, at_mono: float) -> None:
        raise RuntimeError("observer bug")


class BrokenLater:
    """Test double: an async observer whose bug shows after an await."""

    async def job_finished(self, job: Job, at_mono: float) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async observer bug")


class Slow:
    """Test double: an async observer that waits until the test lets it go."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.done: list[str] = []

    async def job_finished(self, job: Job, at_mono: float) -> None:
        await self.go.wait()
        self.done.append(job.id)


def a_job() -> Job:
    now = FakeClock().now()
    return Job(
        id=JobId("job_us_x"),
        org_id=OrgId("org_a"),
        region=Region.US,
        task=Task.CHAT,
        model="m",
        priority=Priority.INTERACTIVE,
        state=JobState.SUCCEEDED,
        created_at=now,
        deadline_at=now + 1,
    )


async def test_observers_are_called_in_order_and_a_failing_one_is_counted_and_skipped() -> None:
    calls: list[str] = []
    failed: list[str] = []
    completions = Completions(
        [
            OnFinished(lambda job: calls.append("first")),
            Broken(),
            OnFinished(lambda job: calls.append("last")),
        ],
        on_failure=failed.append,
    )

    completions.notify(a_job(), 0.0)

    assert (calls, failed) == (["first", "last"], ["Broken"])


async def test_an_async_observer_runs_without_being_awaited_and_its_failure_is_counted() -> None:
    failed: list[str] = []
    slow = Slow()
    completions = Completions([slow, BrokenLater()], on_failure=failed.append)

    completions.notify(a_job(), 0.0)  # returns at once although `slow` waits

    assert completions.pending() == 2
    slow.go.set()
    await completions.aclose()
    assert (slow.done, failed, completions.pending()) == (["job_us_x"], ["BrokenLater"], 0)


async def test_close_cancels_an_observer_that_does_not_end() -> None:
    hanging = Slow()
    completions = Completions([hanging])
    completions.notify(a_job(), 0.0)

    await completions.aclose(timeout_seconds=0.05)

    assert (hanging.done, completions.pending()) == ([], 0)


async def test_failing_observers_do_not_break_dispatch_and_later_observers_see_committed_outcomes(
    tmp_path: Path,
) -> None:
    """A broken observer, a broken async one and a slow one sit before a recorder in the node's list: every job
    is still dispatched and finished, and the recorder sees each job with its terminal row and usage event
    already in the store."""
    slow = Slow()
    seen: list[tuple[str, str | None, int]] = []
    holder: list[NodeHarness] = []

    async def record(job: Job) -> None:
        h = holder[0]
        stored = await h.repo.get(job.org_id, JobId(job.id))
        seen.append((job.id, stored.state.value if stored else None, await h.repo.usage.count_for(job.id)))

    async with open_harness(tmp_path, observers=(Broken(), BrokenLater(), slow, OnFinished(record))) as h:
        holder.append(h)
        worker = h.attach("w1", slots=2)
        jobs = [await h.submit() for _ in range(3)]
        await h.settle()
        for job in jobs[:2]:
            h.send(worker, p.JobResult(job_id=job.id, fence=worker.dispatch_of(job.id).fence, output={}))
        await h.settle()
        h.send(worker, p.JobResult(job_id=jobs[2].id, fence=worker.dispatch_of(jobs[2].id).fence, output={}))
        await h.settle()
        async with asyncio.timeout(10):  # the recorder and the broken async ones run on their own
            while len(seen) < 3 or h.node._completions.pending() > 3:
                await asyncio.sleep(0.01)

        assert h.finished_states() == dict.fromkeys([j.id for j in jobs], JobState.SUCCEEDED)
        # async observers run on their own tasks: they may finish in any order
        assert sorted(seen) == sorted((j.id, "succeeded", 1) for j in jobs)
        assert slow.done == [] and h.node._completions.pending() == 3  # still waiting, dispatch went on
        failures = {
            s.labels["observer"]: s.value
            for metric in h.registry.collect()
            if metric.name == "ferryman_completion_observer_failures"
            for s in metric.samples
            if s.name.endswith("_total")
        }
        assert failures == {"Broken": 3.0, "BrokenLater": 3.0}
        slow.go.set()
    assert slow.done == [j.id for j in jobs]  # the node's stop let the slow observer finish
