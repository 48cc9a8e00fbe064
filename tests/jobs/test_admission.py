"""Admission as an ordered list of checks: each check on its own, the order, and holds released exactly once."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ferryman import protocol as p
from ferryman.errors import BacklogFull, Conflict, FerrymanError, InvalidRequest, NotFound
from ferryman.jobs import (
    Admission,
    BacklogRoom,
    Candidate,
    IdempotentReplay,
    InputUrlsAllowed,
    Job,
    JobSpec,
    JobState,
    ModelServed,
    RegionServed,
    TaskServed,
    WebhookAllowed,
    standard_checks,
)
from ferryman.types import JobId, Priority, Region, Task
from tests.dispatch.harness import MODEL, ORG, QUIET_NODE, NodeHarness, open_harness

pytestmark = pytest.mark.anyio

SPEC = JobSpec(
    org_id=ORG,
    region=Region.US,
    task=Task.CHAT,
    model=MODEL,
    priority=Priority.INTERACTIVE,
    payload={"prompt": "hi"},
)


def candidate(**changes: object) -> Candidate:
    return Candidate(JobId("job_us_candidate"), dataclasses.replace(SPEC, **changes))  # type: ignore[arg-type]


class CountingHold:
    """Test double of a check that holds something per job (a concurrency slot): counts takes and releases."""

    def __init__(self) -> None:
        self.taken: list[JobId] = []
        self.released: Counter[JobId] = Counter()

    async def admit(self, c: Candidate) -> Job | None:
        self.taken.append(c.job_id)
        return None

    def release(self, job_id: JobId) -> None:
        self.released[job_id] += 1


class Refuse:
    """Test double of a check that refuses the jobs whose prompt it is given."""

    def __init__(self, prompt: str, error: Exception) -> None:
        self.prompt, self.error = prompt, error

    async def admit(self, c: Candidate) -> Job | None:
        if c.spec.payload.get("prompt") == self.prompt:
            raise self.error
        return None


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[NodeHarness]:
    async with open_harness(tmp_path, settings=dataclasses.replace(QUIET_NODE, backlog_cap=1)) as h:
        yield h


# -- each check on its own, with the error the client gets today


async def test_region_served_refuses_a_region_without_a_node(harness: NodeHarness) -> None:
    check = RegionServed({Region.US: harness.node})
    assert await check.admit(candidate()) is None
    with pytest.raises(InvalidRequest, match="region 'eu' is not served here"):
        await check.admit(candidate(region=Region.EU))


async def test_model_served_refuses_a_model_unknown_in_the_region(harness: NodeHarness) -> None:
    check = ModelServed({Region.US: harness.node})
    assert await check.admit(candidate()) is None
    with pytest.raises(NotFound, match="model 'nope' is not served in region us"):
        await check.admit(candidate(model="nope"))


async def test_task_served_refuses_a_task_the_model_does_not_serve(harness: NodeHarness) -> None:
    check = TaskServed({Region.US: harness.node})
    assert await check.admit(candidate()) is None
    with pytest.raises(InvalidRequest, match=r"does not serve task 'image'; it serves \['chat'\]"):
        await check.admit(candidate(task=Task.IMAGE))


async def test_idempotent_replay_answers_with_the_earlier_job_or_conflict(harness: NodeHarness) -> None:
    keyed = dataclasses.replace(SPEC, idempotency_key="k", request_digest="d1")
    first, _ = await harness.service.submit(keyed)
    check = IdempotentReplay({Region.US: harness.repo})

    assert await check.admit(candidate()) is None  # no key: nothing to replay
    replayed = await check.admit(candidate(idempotency_key="k", request_digest="d1"))
    assert replayed is not None and replayed.id == first.id
    with pytest.raises(Conflict, match="Idempotency-Key was already used with a different request body"):
        await check.admit(candidate(idempotency_key="k", request_digest="d2"))


async def test_webhook_allowed_refuses_a_loopback_webhook_unless_private_is_allowed() -> None:
    loopback = candidate(webhook_url="http://127.0.0.1:9/hook")
    assert await WebhookAllowed(allow_private=True).admit(loopback) is None
    with pytest.raises(InvalidRequest, match="webhook URL"):
        await WebhookAllowed(allow_private=False).admit(loopback)


async def test_input_urls_allowed_refuses_an_image_url_into_the_private_network() -> None:
    internal = candidate(payload={"messages": [{"image_url": {"url": "http://10.0.0.1/a.png"}}]})
    assert await InputUrlsAllowed(allow_private=True).admit(internal) is None
    assert await InputUrlsAllowed(allow_private=False).admit(candidate()) is None
    with pytest.raises(InvalidRequest, match="image_url URL"):
        await InputUrlsAllowed(allow_private=False).admit(internal)


async def test_backlog_room_refuses_once_the_class_queue_is_at_its_cap(harness: NodeHarness) -> None:
    check = BacklogRoom({Region.US: harness.node})
    assert await check.admit(candidate()) is None
    await harness.submit()  # the cap is 1 and no worker is attached: it stays queued
    with pytest.raises(BacklogFull, match="holds 1 jobs"):
        await check.admit(candidate())
    assert await check.admit(candidate(priority=Priority.BATCH)) is None  # another class has room


def test_standard_checks_come_in_todays_order() -> None:
    checks = standard_checks(nodes={}, repos={}, allow_private_webhooks=False, allow_private_input_urls=False)
    assert [type(c) for c in checks] == [
        RegionServed,
        ModelServed,
        TaskServed,
        IdempotentReplay,
        WebhookAllowed,
        InputUrlsAllowed,
        BacklogRoom,
    ]


# -- the list: order, holds and their release


async def test_first_refusal_wins_and_later_checks_are_not_asked() -> None:
    later = CountingHold()
    admission = Admission([Refuse("hi", InvalidRequest("first")), Refuse("hi", NotFound("second")), later])

    with pytest.raises(InvalidRequest, match="first"):
        await admission.admit(candidate())

    assert later.taken == []


async def test_a_hold_is_released_at_once_when_a_later_check_refuses() -> None:
    hold = CountingHold()
    admission = Admission([hold, Refuse("hi", InvalidRequest("no"))])

    with pytest.raises(InvalidRequest):
        await admission.admit(candidate())

    assert hold.released == Counter({JobId("job_us_candidate"): 1})
    assert admission.holding() == 0


async def test_a_broken_release_does_not_stop_the_other_releases() -> None:
    class BrokenRelease(CountingHold):
        def release(self, job_id: JobId) -> None:
            raise RuntimeError("bug in a check")

    first = CountingHold()
    admission = Admission([first, BrokenRelease()])
    assert await admission.admit(candidate()) is None

    admission.release(JobId("job_us_candidate"))

    assert first.released == Counter({JobId("job_us_candidate"): 1})


async def test_every_admitted_job_releases_its_hold_exactly_once_at_its_end(tmp_path: Path) -> None:
    """Succeeded, failed, cancelled, refused later in the list, replayed, refused for the backlog: each hold the
    check took is given back once, and a job that still runs keeps its hold."""
    hold = CountingHold()
    # the hold comes first in the list, so the standard checks refuse after it took something
    async with open_harness(tmp_path, first_checks=(hold,)) as h:
        worker = h.attach("w1", slots=2)
        succeeded, failed = await h.submit(), await h.submit()
        cancelled, running = await h.submit(), await h.submit()
        await h.settle()
        h.send(
            worker, p.JobResult(job_id=succeeded.id, fence=worker.dispatch_of(succeeded.id).fence, output={})
        )
        h.send(
            worker,
            p.JobError(
                job_id=failed.id,
                fence=worker.dispatch_of(failed.id).fence,
                code="bad_input",
                message="no",
                retryable=False,
            ),
        )
        await h.service.cancel(ORG, cancelled.id)
        with pytest.raises(NotFound):
            await h.submit(model="nope")
        keyed = dataclasses.replace(SPEC, idempotency_key="k", request_digest="d")
        original, _ = await h.service.submit(keyed)
        replay, created = await h.service.submit(keyed)
        await h.settle()

        assert (replay.id, created) == (original.id, False)
        assert h.finished_states() == {
            succeeded.id: JobState.SUCCEEDED,
            failed.id: JobState.FAILED,
            cancelled.id: JobState.CANCELLED,
        }
        ended = [succeeded.id, failed.id, cancelled.id]
        assert {j: hold.released[j] for j in ended} == dict.fromkeys(ended, 1)
        assert hold.released[running.id] == 0 and hold.released[original.id] == 0  # still live
        assert len(hold.taken) == 7  # the unknown model and the replay took, and gave back at once
        assert sum(hold.released.values()) == 5
        assert h.admission.holding() == 2


async def test_a_check_that_fails_refuses_its_job_and_dispatch_goes_on(tmp_path: Path) -> None:
    """A bug in one check (an unexpected exception) refuses only the job it was asked about: jobs before and
    after it are admitted, dispatched and finish, and no hold leaks."""
    hold = CountingHold()
    broken = Refuse("boom", RuntimeError("bug in a check"))
    async with open_harness(tmp_path, extra_checks=(hold, broken)) as h:
        worker = h.attach("w1", slots=4)
        before = await h.submit()
        with pytest.raises(RuntimeError, match="bug in a check"):
            await h.submit(payload={"prompt": "boom"})
        after = await h.submit()
        await h.settle()
        for job in (before, after):
            h.send(worker, p.JobResult(job_id=job.id, fence=worker.dispatch_of(job.id).fence, output={}))
        await h.settle()

        assert h.finished_states() == {before.id: JobState.SUCCEEDED, after.id: JobState.SUCCEEDED}
        assert [d.job_id for d in worker.dispatches()] == [before.id, after.id]
        assert sum(hold.released.values()) == len(hold.taken) == 3
        assert h.admission.holding() == 0


async def test_a_refused_job_is_neither_stored_nor_queued(harness: NodeHarness) -> None:
    with pytest.raises(FerrymanError):
        await harness.submit(model="nope")
    page = await harness.repo.find_page(ORG, cursor=None, limit=10, state=None, task=None, model=None)
    assert page.jobs == [] and harness.node.snapshot()["jobs"]["queued"] == 0
