"""The usage outbox: one event per outcome, committed with it; consumers read and acknowledge in order."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import Connection, select, text

from ferryman import protocol as p
from ferryman import store
from ferryman.clock import FakeClock
from ferryman.jobs import Job, JobState, Timings, Units, UsageEvent, UsageOutbox, units_of, usage_outbox
from ferryman.types import JobId, OrgId, Priority, Region, Task
from tests.dispatch.harness import NodeHarness, open_harness

pytestmark = pytest.mark.anyio


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[NodeHarness]:
    async with open_harness(tmp_path) as h:
        yield h


async def finish_one(h: NodeHarness, prompt: str = "secret words") -> Job:
    """Submit a job and have the harness's one worker (attached on first use) finish it with usage."""
    worker = getattr(h, "usage_worker", None) or h.attach("w1")
    h.usage_worker = worker  # type: ignore[attr-defined]
    job = await h.submit(payload={"prompt": prompt})
    await h.settle()
    fence = worker.dispatch_of(job.id).fence
    h.send(worker, p.JobAccepted(job_id=job.id, fence=fence))
    h.send(
        worker,
        p.JobResult(
            job_id=job.id,
            fence=fence,
            output={"text": "an answer"},
            usage={"prompt_tokens": 7, "completion_tokens": 3, "images": "many"},
            work_ms=1500.0,
        ),
    )
    await h.settle()
    return h.finished[-1]


async def test_a_finished_job_has_one_usage_event_with_its_units_and_no_text(harness: NodeHarness) -> None:
    job = await finish_one(harness)

    [event] = await harness.repo.usage.read("billing")

    assert (event.job_id, event.org_id, event.model, event.task, event.state, event.fence) == (
        job.id,
        job.org_id,
        job.model,
        job.task.value,
        "succeeded",
        job.fence,
    )
    assert (event.units.prompt_tokens, event.units.completion_tokens, event.units.images) == (7, 3, 0)
    assert (
        event.units.gpu_seconds == pytest.approx((job.timings.work_ms or 0) / 1000)
        and event.units.gpu_seconds
    )
    assert "secret" not in repr(event) and "answer" not in repr(event)


async def test_writing_the_same_outcome_again_adds_no_event(harness: NodeHarness) -> None:
    job = await finish_one(harness)

    assert await harness.repo.finish(job, result={"text": "an answer"})

    assert await harness.repo.usage.count_for(job.id) == 1


async def test_an_outcome_for_a_job_the_store_lacks_writes_no_event(harness: NodeHarness) -> None:
    job = await finish_one(harness)
    ghost = dataclasses.replace(job, id=JobId("job_us_neverinserted"))

    assert not await harness.repo.finish(ghost, result=None)

    assert await harness.repo.usage.count_for(ghost.id) == 0


async def test_a_failed_outcome_write_leaves_no_event(harness: NodeHarness) -> None:
    """The event rides in the outcome's transaction: a write that fails after it rolls it back too."""
    job = await finish_one(harness)
    other = dataclasses.replace(job, fence=job.fence + 1)

    def fail_after(conn: Connection) -> None:
        usage_outbox.record(conn, other)
        raise RuntimeError("the commit does not happen")

    with pytest.raises(RuntimeError):
        await harness.writer.write(fail_after)

    assert await harness.repo.usage.count_for(job.id) == 1


async def test_consumers_read_in_order_and_ack_moves_only_forward(harness: NodeHarness) -> None:
    jobs = [await finish_one(harness) for _ in range(3)]
    outbox = harness.repo.usage

    first = await outbox.read("billing", limit=2)
    assert [e.job_id for e in first] == [j.id for j in jobs[:2]]
    assert [e.job_id for e in await outbox.read("billing", limit=2)] == [j.id for j in jobs[:2]]  # not acked

    assert await outbox.ack("billing", first[-1].seq) == first[-1].seq
    assert await outbox.ack("billing", first[0].seq) == first[-1].seq  # an older ack is ignored
    assert [e.job_id for e in await outbox.read("billing")] == [jobs[2].id]
    assert [e.job_id for e in await outbox.read("metering")] == [j.id for j in jobs]  # its own position


async def test_a_consumer_position_survives_a_restart(tmp_path: Path) -> None:
    async with open_harness(tmp_path) as h:
        done = [await finish_one(h) for _ in range(2)]
        [event, _] = await h.repo.usage.read("billing")
        await h.repo.usage.ack("billing", event.seq)
    engine = store.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'region.db'}")
    writer = store.StoreWriter(engine, name="again")
    writer.start()
    try:
        again = UsageOutbox(engine=engine, writer=writer)
        assert await again.position("billing") == event.seq
        assert [e.job_id for e in await again.read("billing")] == [done[1].id]
    finally:
        await writer.stop()
        await engine.dispose()


async def test_apply_runs_the_effect_and_moves_the_position_in_one_transaction(harness: NodeHarness) -> None:
    await finish_one(harness)
    await finish_one(harness)
    outbox = harness.repo.usage
    await harness.writer.write(lambda conn: conn.execute(text("CREATE TABLE ledger (event_id TEXT UNIQUE)")))

    def book(conn: Connection, events: Sequence[UsageEvent]) -> int:
        for e in events:
            conn.execute(text("INSERT INTO ledger VALUES (:id)"), {"id": e.id})
        return len(events)

    def broken(conn: Connection, events: Sequence[UsageEvent]) -> int:
        book(conn, events)
        raise RuntimeError("crash before the commit")

    with pytest.raises(RuntimeError):
        await outbox.apply("ledger", broken)
    assert await outbox.position("ledger") == 0

    events, booked = await outbox.apply("ledger", book)
    again, nothing = await outbox.apply("ledger", book)

    assert (len(events), booked, again, nothing) == (2, 2, [], None)
    async with harness.repo._engine.connect() as conn:
        ledger = (await conn.execute(text("SELECT event_id FROM ledger"))).scalars().all()
    assert sorted(ledger) == sorted(e.id for e in events)


def test_units_ignore_values_a_worker_should_not_have_sent(harness_job: Job) -> None:
    job = dataclasses.replace(
        harness_job,
        usage={"prompt_tokens": -4, "completion_tokens": True, "images": 2, "audio_seconds": float("nan")},
        timings=Timings(work_ms=2500.0),
    )
    assert units_of(job) == Units(images=2, gpu_seconds=2.5)


@pytest.fixture
def harness_job() -> Job:
    return Job(
        id=JobId("job_us_x"),
        org_id=OrgId("org_a"),
        region=Region.US,
        task=Task.CHAT,
        model="m",
        priority=Priority.INTERACTIVE,
        state=JobState.SUCCEEDED,
        created_at=FakeClock().now(),
        deadline_at=FakeClock().now() + 1,
    )


def test_usage_events_table_has_no_payload_or_output_column() -> None:
    columns = set(select(store.tables.usage_events).selected_columns.keys())
    assert not columns & {"payload", "result", "usage", "error_message", "error_detail"}
