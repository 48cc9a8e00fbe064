from __future__ import annotations

import asyncio
import dataclasses

import anyio
import pytest

from ferryman.jobs import Job, JobEvent, JobEvents, JobState
from ferryman.jobs.events import MAX_EVENTS_PER_JOB
from ferryman.types import JobId, OrgId, Priority, Region, Task

pytestmark = pytest.mark.anyio

JOB = Job(
    id=JobId("job_us_one"),
    org_id=OrgId("org_a"),
    region=Region.US,
    task=Task.CHAT,
    model="m",
    priority=Priority.INTERACTIVE,
    state=JobState.SUCCEEDED,
    created_at=0.0,
    deadline_at=600.0,
    result={"text": "hi"},
)
DONE = {"state": "succeeded"}


async def collect(events: JobEvents, job_id: str, after: int = 0) -> list[JobEvent]:
    with anyio.fail_after(2):
        return [event async for event in events.follow(job_id, after)]


def published(events: JobEvents) -> JobEvents:
    events.publish(JOB.id, "status", {"state": "dispatched"})
    events.publish(JOB.id, "chunk", {"text": "h"})
    events.publish(JOB.id, "chunk", {"text": "i"})
    events.finish(JOB, at_mono=100.0)
    return events


async def test_follow_yields_every_event_in_order_ending_with_done() -> None:
    events = published(JobEvents())

    assert await collect(events, JOB.id) == [
        JobEvent(1, "status", {"state": "dispatched"}),
        JobEvent(2, "chunk", {"text": "h"}),
        JobEvent(3, "chunk", {"text": "i"}),
        JobEvent(4, "done", DONE),
    ]


async def test_follow_resumes_after_the_given_seq() -> None:
    events = published(JobEvents())

    assert await collect(events, JOB.id, after=2) == [
        JobEvent(3, "chunk", {"text": "i"}),
        JobEvent(4, "done", DONE),
    ]


async def test_follow_waits_for_events_published_later() -> None:
    events = JobEvents()
    events.publish(JOB.id, "status", {"state": "running"})

    async def publish_later() -> None:
        await asyncio.sleep(0.01)
        events.publish(JOB.id, "chunk", {"text": "x"})
        await asyncio.sleep(0.01)
        events.finish(JOB, at_mono=1.0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(publish_later)
        got = await collect(events, JOB.id)

    assert got == [
        JobEvent(1, "status", {"state": "running"}),
        JobEvent(2, "chunk", {"text": "x"}),
        JobEvent(3, "done", DONE),
    ]


async def test_publish_is_ignored_after_finish() -> None:
    events = published(JobEvents())

    events.publish(JOB.id, "chunk", {"text": "late"})

    assert [e.seq for e in await collect(events, JOB.id)] == [1, 2, 3, 4]


async def test_finish_keeps_first_final_job_when_called_twice() -> None:
    events = JobEvents()
    events.finish(JOB, at_mono=1.0)

    events.finish(dataclasses.replace(JOB, state=JobState.FAILED), at_mono=2.0)

    assert (events.final(JOB.id), await collect(events, JOB.id)) == (JOB, [JobEvent(1, "done", DONE)])


async def test_wait_final_returns_job_finished_while_waiting() -> None:
    events = JobEvents()

    async def finish_later() -> None:
        await asyncio.sleep(0.01)
        events.finish(JOB, at_mono=1.0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(finish_later)
        final = await events.wait_final(JOB.id, timeout=2.0)

    assert final == JOB


async def test_wait_final_returns_none_when_timeout_passes() -> None:
    events = JobEvents()
    events.publish(JOB.id, "status", {"state": "running"})

    assert await events.wait_final(JOB.id, timeout=0.01) is None


async def test_sweep_forgets_only_streams_finished_longer_ago_than_retention() -> None:
    events = JobEvents()
    old, recent, running = (
        dataclasses.replace(JOB, id=JobId(name)) for name in ("job_us_old", "job_us_new", "job_us_run")
    )
    events.finish(old, at_mono=100.0)
    events.finish(recent, at_mono=500.0)
    events.publish(running.id, "status", {"state": "running"})

    forgotten = events.sweep(now_mono=701.0, retention_seconds=600.0)

    assert (forgotten, events.has(old.id), events.has(recent.id), events.has(running.id)) == (
        1,
        False,
        True,
        True,
    )


async def test_publish_drops_oldest_events_past_the_cap_but_keeps_numbering() -> None:
    events = JobEvents()
    for i in range(MAX_EVENTS_PER_JOB + 5):
        events.publish(JOB.id, "chunk", {"i": i})
    events.finish(JOB, at_mono=1.0)

    got = await collect(events, JOB.id)

    assert (len(got), got[0], got[-1]) == (
        MAX_EVENTS_PER_JOB,
        JobEvent(7, "chunk", {"i": 6}),
        JobEvent(MAX_EVENTS_PER_JOB + 6, "done", DONE),
    )
