from __future__ import annotations

import itertools
from collections import Counter

from ferryman.dispatch.fairshare import FairQueue, ModelQueues
from ferryman.dispatch.live import LiveJob
from ferryman.jobs import Job, JobState
from ferryman.types import JobId, OrgId, Priority, Region, Task

_ids = itertools.count(1)


def queued(org: str, *, priority: Priority = Priority.INTERACTIVE, weight: float = 1.0) -> LiveJob:
    job = Job(
        id=JobId(f"job_us_{org}_{next(_ids):04d}"),
        org_id=OrgId(org),
        region=Region.US,
        task=Task.CHAT,
        model="m",
        priority=priority,
        state=JobState.QUEUED,
        created_at=0.0,
        deadline_at=600.0,
    )
    return LiveJob(
        job=job, payload={}, state=JobState.QUEUED, deadline_mono=600.0, enqueued_mono=0.0, weight=weight
    )


def pop_orgs(queue: FairQueue, count: int) -> list[str]:
    popped = [queue.pop() for _ in range(count)]
    return [job.org_id for job in popped if job is not None]


def test_fair_queue_pops_one_orgs_jobs_in_push_order() -> None:
    queue = FairQueue()
    jobs = [queued("a") for _ in range(4)]
    for job in jobs:
        queue.push(job)

    assert [queue.pop() for _ in range(5)] == [*jobs, None]


def test_fair_queue_pops_front_pushed_job_first() -> None:
    queue = FairQueue()
    first, second, returned = queued("a"), queued("a"), queued("a")
    queue.push(first)
    queue.push(second)
    queue.push(returned, front=True)

    assert [queue.pop() for _ in range(3)] == [returned, first, second]


def test_fair_queue_pops_small_org_within_two_turns_when_big_org_has_long_backlog() -> None:
    queue = FairQueue()
    for _ in range(1000):
        queue.push(queued("big"))
    small = queued("small")
    queue.push(small)

    assert small in [queue.pop(), queue.pop()]


def test_fair_queue_alternates_orgs_of_equal_weight() -> None:
    queue = FairQueue()
    for _ in range(100):
        queue.push(queued("a"))
    for _ in range(3):
        queue.push(queued("b"))

    assert pop_orgs(queue, 8) == ["a", "b", "a", "b", "a", "b", "a", "a"]


def test_fair_queue_gives_weight_two_org_twice_the_turns() -> None:
    queue = FairQueue()
    for _ in range(100):
        queue.push(queued("heavy", weight=2.0))
        queue.push(queued("light", weight=1.0))

    assert Counter(pop_orgs(queue, 60)) == {"heavy": 40, "light": 20}


def test_fair_queue_gives_rejoining_org_no_banked_credit_when_it_was_idle() -> None:
    queue = FairQueue()
    for _ in range(200):
        queue.push(queued("busy"))
    queue.push(queued("idle"))
    assert pop_orgs(queue, 2) == ["busy", "idle"]
    assert pop_orgs(queue, 100) == ["busy"] * 100  # "idle" has nothing queued meanwhile

    for _ in range(20):
        queue.push(queued("idle"))

    assert Counter(pop_orgs(queue, 20)) == {"busy": 10, "idle": 10}


def test_fair_queue_len_counts_out_discarded_job() -> None:
    queue = FairQueue()
    jobs = [queued("a") for _ in range(3)]
    for job in jobs:
        queue.push(job)

    queue.discard(jobs[1])
    jobs[1].state = JobState.CANCELLED

    assert len(queue) == 2


def test_fair_queue_skips_discarded_job_when_popping() -> None:
    queue = FairQueue()
    jobs = [queued("a") for _ in range(3)]
    for job in jobs:
        queue.push(job)
    queue.discard(jobs[1])
    jobs[1].state = JobState.CANCELLED

    assert [queue.pop() for _ in range(3)] == [jobs[0], jobs[2], None]


def test_fair_queue_serves_other_org_when_only_job_of_an_org_was_discarded() -> None:
    queue = FairQueue()
    gone, other = queued("a"), queued("b")
    queue.push(gone)
    queue.push(other)
    queue.discard(gone)
    gone.state = JobState.EXPIRED

    assert (queue.peek(), queue.pop(), queue.pop(), len(queue)) == (other, other, None, 0)


def test_fair_queue_accepts_org_again_after_its_jobs_were_discarded() -> None:
    queue = FairQueue()
    gone = queued("a")
    queue.push(gone)
    queue.discard(gone)
    gone.state = JobState.CANCELLED
    assert queue.pop() is None

    again = queued("a")
    queue.push(again)

    assert (len(queue), queue.pop()) == (1, again)


def test_fair_queue_position_is_zero_for_head_and_grows_behind_it() -> None:
    queue = FairQueue()
    jobs = [queued("a") for _ in range(4)]
    for job in jobs:
        queue.push(job)

    assert [queue.position(job) for job in jobs] == [0, 1, 2, 3]


def test_fair_queue_position_falls_as_jobs_ahead_are_popped() -> None:
    queue = FairQueue()
    jobs = [queued("a") for _ in range(4)]
    for job in jobs:
        queue.push(job)

    queue.pop()
    queue.pop()

    assert [queue.position(job) for job in jobs[2:]] == [0, 1]


def test_fair_queue_position_stays_below_queue_length_when_orgs_interleave() -> None:
    queue = FairQueue()
    jobs = []
    for _ in range(3):
        for org in ("a", "b", "c"):
            jobs.append(queued(org))
            queue.push(jobs[-1])

    assert max(queue.position(job) for job in jobs) < len(queue)


def test_model_queues_serve_interactive_before_async_before_batch() -> None:
    queues = ModelQueues()
    batch, background, interactive = (
        queued("a", priority=Priority.BATCH),
        queued("a", priority=Priority.ASYNC),
        queued("a", priority=Priority.INTERACTIVE),
    )
    for job in (batch, background, interactive):
        queues.push(job)

    popped = []
    while (best := queues.best()) is not None:
        popped.append((best[0], queues.pop(best[0])))

    assert popped == [(0, interactive), (1, background), (2, batch)]


def test_model_queues_count_higher_classes_in_position() -> None:
    queues = ModelQueues()
    batch = queued("a", priority=Priority.BATCH)
    queues.push(batch)
    for _ in range(2):
        queues.push(queued("a", priority=Priority.INTERACTIVE))
    queues.push(queued("b", priority=Priority.ASYNC))

    assert (len(queues), queues.position(batch)) == (4, 3)
