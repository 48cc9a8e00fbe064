"""Whose fault a failure is, where a retry goes, and how a quarantine starts, shows and ends (docs/jobs.md,
"Retries and quarantine"); and which connection may act under a worker id (docs/worker-protocol.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ferryman import dispatch
from ferryman import protocol as p
from ferryman.clock import FakeClock
from ferryman.jobs import Job, JobFailure, JobState
from ferryman.types import JobId, Task
from tests.dispatch.harness import MODEL, QUIET_NODE, FakeWorker, NodeHarness, open_harness

pytestmark = pytest.mark.anyio

COOLDOWN = 60.0
STRICT = dataclasses.replace(
    QUIET_NODE, quarantine_after_failures=1, quarantine_cooldown_seconds=COOLDOWN, lease_seconds=30.0
)


@pytest.fixture
async def strict(tmp_path: Path, clock: FakeClock) -> AsyncIterator[NodeHarness]:
    """A node that quarantines a worker at its first failure that another worker then ran."""
    async with open_harness(tmp_path, clock=clock, settings=STRICT) as h:
        yield h


def oom(job_id: str, fence: int) -> p.JobError:
    return p.JobError(job_id=job_id, fence=fence, code="oom", message="out of memory", retryable=True)


def fail(h: NodeHarness, worker: FakeWorker, job: Job) -> None:
    h.send(worker, oom(job.id, worker.dispatch_of(job.id).fence))


def succeed(h: NodeHarness, worker: FakeWorker, job: Job) -> None:
    h.send(worker, p.JobResult(job_id=job.id, fence=worker.dispatch_of(job.id).fence, output={"ok": True}))


def holds(worker: FakeWorker) -> list[str]:
    return sorted(worker.conn.running)


def outcomes(h: NodeHarness) -> list[tuple[str, JobState, JobFailure | None]]:
    return [(job.id, job.state, job.error) for job in h.finished]


def wait_reason(h: NodeHarness, job: Job) -> str | None:
    info = h.node.queue_info(JobId(job.id))
    return None if info is None else info.wait_reason


async def quarantine_a(h: NodeHarness) -> tuple[FakeWorker, FakeWorker]:
    """Worker `a` fails a job that then succeeds on `b`: under STRICT, `a` is quarantined."""
    a = h.attach("a")
    job = await h.submit()
    await h.settle()
    b = h.attach("b")
    fail(h, a, job)
    await h.settle()
    succeed(h, b, job)
    await h.settle()
    return a, b


# -- whose fault


async def test_retryable_errors_of_one_job_do_not_quarantine_a_lone_worker(harness: NodeHarness) -> None:
    lone = harness.attach("lone")
    doomed = await harness.submit()
    for _ in range(5):
        await harness.settle()
        fail(harness, lone, doomed)
    await harness.settle()

    after = await harness.submit()
    await harness.settle()

    assert (outcomes(harness), holds(lone)) == (
        [(doomed.id, JobState.FAILED, JobFailure("worker_error", "oom: out of memory"))],
        [after.id],
    )
    assert harness.node.worker_health() == {"healthy_workers": 1, "quarantined_workers": []}


async def test_a_job_that_fails_on_two_workers_counts_against_neither(strict: NodeHarness) -> None:
    a = strict.attach("a")
    job = await strict.submit()
    await strict.settle()
    b = strict.attach("b")
    fail(strict, a, job)  # retried on b, the worker it has not failed on
    await strict.settle()
    fail(strict, b, job)  # failed on two workers: the job's fault
    await strict.settle()
    retried_on = [w.id for w in (a, b) if job.id in w.conn.running]
    succeed(strict, a if retried_on == ["a"] else b, job)
    await strict.settle()

    assert (outcomes(strict), strict.node.worker_health()["quarantined_workers"]) == (
        [(job.id, JobState.SUCCEEDED, None)],
        [],
    )


async def test_worker_is_quarantined_when_jobs_it_failed_succeed_on_another(tmp_path: Path) -> None:
    settings = dataclasses.replace(STRICT, quarantine_after_failures=2)
    async with open_harness(tmp_path, settings=settings) as h:
        bad = h.attach("bad")
        first = await h.submit()
        await h.settle()
        good = h.attach("good")
        fail(h, bad, first)
        await h.settle()
        second = await h.submit()  # to the free bad worker, while good runs the first
        await h.settle()
        strikes_after_one = bad.conn.failures_in_row
        succeed(h, good, first)
        fail(h, bad, second)
        await h.settle()
        succeed(h, good, second)
        await h.settle()
        third = await h.submit()
        await h.settle()
        fourth = await h.submit()  # good is busy with the third; the quarantined worker takes nothing
        await h.settle()

        assert (strikes_after_one, bad.conn.quarantined, holds(bad), holds(good)) == (0, True, [], [third.id])
        assert isinstance(bad.messages()[-1], p.ErrorMessage) and bad.messages()[-1].code == "quarantined"
        assert h.node.worker_health() == {"healthy_workers": 1, "quarantined_workers": ["bad"]}
        info = h.node.model_info(MODEL)
        assert info is not None and (info.workers, info.quarantined, info.warm) == (2, 1, True)
        assert wait_reason(h, fourth) == "all_workers_busy"


async def test_queued_job_says_workers_quarantined_when_only_quarantined_workers_serve(
    strict: NodeHarness,
) -> None:
    a, b = await quarantine_a(strict)
    strict.node.detach(b.conn)
    job = await strict.submit()
    await strict.settle()

    info = strict.node.model_info(MODEL)
    assert (holds(a), wait_reason(strict, job), info and info.warm, strict.node.worker_health()) == (
        [],
        "workers_quarantined",
        False,
        {"healthy_workers": 0, "quarantined_workers": ["a"]},
    )


# -- where a retry goes


async def test_retry_waits_for_another_busy_worker_instead_of_the_one_it_failed_on(
    harness: NodeHarness,
) -> None:
    a = harness.attach("a")
    first = await harness.submit()
    await harness.settle()
    b = harness.attach("b")
    second = await harness.submit()
    await harness.settle()
    assert (holds(a), holds(b)) == ([first.id], [second.id])

    fail(harness, a, first)
    await harness.settle()
    held_while_b_busy = holds(a)
    assert harness.node.snapshot()["depth"][(MODEL, "interactive")] == 1  # the waiting retry is queued
    third = await harness.submit()  # the free worker a takes other work meanwhile
    await harness.settle()
    succeed(harness, b, second)
    await harness.settle()

    assert (held_while_b_busy, holds(a), holds(b)) == ([], [third.id], [first.id])
    assert b.dispatch_of(first.id).attempt == 2


async def test_retry_goes_back_to_the_worker_it_failed_on_when_the_other_leaves(harness: NodeHarness) -> None:
    a = harness.attach("a")
    first = await harness.submit()
    await harness.settle()
    b = harness.attach("b")
    second = await harness.submit()
    await harness.settle()
    fail(harness, a, first)
    await harness.settle()

    harness.node.detach(b.conn)  # no other worker is left: the first goes back to a, the second after it
    await harness.settle()
    held_after_detach = holds(a)
    succeed(harness, a, first)
    await harness.settle()

    assert (held_after_detach, holds(a)) == ([first.id], [second.id])


async def test_lapsed_lease_does_not_send_the_job_back_to_the_frozen_worker(harness: NodeHarness) -> None:
    frozen = harness.attach("frozen")
    stuck = await harness.submit()
    await harness.settle()
    busy = harness.attach("busy")
    other = await harness.submit()
    await harness.settle()
    assert (holds(frozen), holds(busy)) == ([stuck.id], [other.id])

    harness.clock.advance(20)
    harness.send(busy, p.JobProgress(job_id=other.id, fence=busy.dispatch_of(other.id).fence, progress=0.5))
    harness.clock.advance(11)
    harness.node.tick()  # the frozen worker's lease lapsed; busy's was renewed
    await harness.settle()
    after_lapse = holds(frozen)
    succeed(harness, busy, other)
    await harness.settle()

    assert (after_lapse, holds(busy), [d.job_id for d in frozen.dispatches()]) == ([], [stuck.id], [stuck.id])


# -- lifting a quarantine


async def test_quarantine_is_lifted_by_a_probe_job_that_succeeds_after_the_cooldown(
    strict: NodeHarness,
) -> None:
    a, b = await quarantine_a(strict)
    strict.node.detach(b.conn)
    waiting = await strict.submit()
    strict.clock.advance(COOLDOWN - 1)
    strict.node.tick()
    await strict.settle()
    during_cooldown = holds(a)

    strict.clock.advance(2)
    strict.node.tick()
    await strict.settle()
    probe = holds(a)
    succeed(strict, a, waiting)
    await strict.settle()
    after = await strict.submit()
    await strict.settle()

    assert (during_cooldown, probe, holds(a), a.conn.quarantined) == ([], [waiting.id], [after.id], False)
    assert strict.node.worker_health() == {"healthy_workers": 1, "quarantined_workers": []}


async def test_a_failed_probe_doubles_the_cooldown(strict: NodeHarness) -> None:
    a, b = await quarantine_a(strict)
    strict.node.detach(b.conn)
    probe = await strict.submit()
    strict.clock.advance(COOLDOWN + 1)
    strict.node.tick()
    await strict.settle()
    fail(strict, a, probe)  # the probe fails: no work for twice the cool-down
    await strict.settle()
    after_failed_probe = holds(a)

    strict.clock.advance(2 * COOLDOWN - 1)
    strict.node.tick()
    await strict.settle()
    before_second_probe = holds(a)
    strict.clock.advance(2)
    strict.node.tick()
    await strict.settle()

    assert (after_failed_probe, before_second_probe, holds(a), a.conn.quarantined) == (
        [],
        [],
        [probe.id],
        True,
    )


async def test_a_reconnect_does_not_lift_a_quarantine(strict: NodeHarness) -> None:
    a, b = await quarantine_a(strict)
    strict.node.detach(b.conn)
    again = strict.attach("a")
    job = await strict.submit()
    await strict.settle()

    assert (again.conn.quarantined, holds(again), wait_reason(strict, job)) == (
        True,
        [],
        "workers_quarantined",
    )


# -- identity


async def test_a_worker_id_is_refused_to_a_credential_other_than_the_one_that_registered_it(
    harness: NodeHarness,
) -> None:
    owner = harness.attach("w1", credential="wtk_owner")
    with pytest.raises(dispatch.WorkerRefused) as refused:
        harness.attach("w1", credential="wtk_rogue")
    job = await harness.submit()
    await harness.settle()

    assert (refused.value.code, owner.closes, holds(owner)) == ("worker_id_taken", [], [job.id])


async def test_the_same_credential_replaces_its_connection_under_a_new_fence(harness: NodeHarness) -> None:
    first = harness.attach("w1", credential="wtk_owner")
    job = await harness.submit()
    await harness.settle()
    fence = first.dispatch_of(job.id).fence

    second = harness.attach("w1", credential="wtk_owner")
    await harness.settle()

    assert (first.closes, second.dispatch_of(job.id).fence > fence) == ([None], True)


async def test_a_register_with_more_models_than_the_cap_is_refused(harness: NodeHarness) -> None:
    models = tuple(f"model-{i}" for i in range(QUIET_NODE.max_models_per_worker + 1))
    with pytest.raises(dispatch.WorkerRefused) as refused:
        harness.attach("greedy", models=models)

    assert (refused.value.code, harness.node.model_tasks("model-0"), harness.node.worker_health()) == (
        "protocol_error",
        None,
        {"healthy_workers": 0, "quarantined_workers": []},
    )
    assert "at most 16" in refused.value.message


# -- the catalog


async def test_a_model_leaves_the_catalog_once_no_worker_served_it_for_the_retention(tmp_path: Path) -> None:
    settings = dataclasses.replace(QUIET_NODE, model_retention_seconds=3600.0)
    async with open_harness(tmp_path, settings=settings) as h:
        passing = h.attach("passing", models=("passing-model",), tasks=(Task.EMBEDDINGS,))
        await h.settle()
        h.node.detach(passing.conn)
        h.clock.advance(1800)
        h.node.tick()
        kept = h.node.model_tasks("passing-model")
        h.clock.advance(1801)
        h.node.tick()
        await h.settle()

        stored = {name for name, _, _ in await h.repo.find_models()}
        assert (kept, h.node.model_tasks("passing-model"), "passing-model" in stored) == (
            frozenset({Task.EMBEDDINGS}),
            None,
            False,
        )
        assert [m.name for m in h.node.models()] == sorted(stored)


async def test_a_restarted_node_drops_models_unserved_for_longer_than_the_retention(tmp_path: Path) -> None:
    settings = dataclasses.replace(QUIET_NODE, model_retention_seconds=3600.0)
    clock = FakeClock()
    async with open_harness(tmp_path, clock=clock, settings=settings) as h:
        passing = h.attach("passing", models=("passing-model",))
        await h.settle()
        h.node.detach(passing.conn)  # its last worker left: it is stored as last served now
        await h.settle()
    later = FakeClock(start=clock.now() + 3601)
    async with open_harness(tmp_path, clock=later, settings=settings) as h:
        stored = {name for name, _, _ in await h.repo.find_models()}
        assert (
            h.node.model_tasks("passing-model"),
            "passing-model" in stored,
            h.node.model_tasks(MODEL),
        ) == (
            None,
            False,
            frozenset({Task.CHAT}),
        )


async def test_a_worker_id_stays_bound_to_its_token_after_it_disconnects(harness: NodeHarness) -> None:
    owner = harness.attach("w1", credential="wtk_owner")
    harness.node.detach(owner.conn)

    with pytest.raises(dispatch.WorkerRefused) as refused:
        harness.attach("w1", credential="wtk_rogue")
    back = harness.attach("w1", credential="wtk_owner")

    assert (refused.value.code, back.conn.credential) == ("worker_id_taken", "wtk_owner")
