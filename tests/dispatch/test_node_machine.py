"""A Hypothesis state machine over the queue node: workers come and go, send results with current and stale
fences, time passes; whatever the order, no job completes twice, no worker is handed more jobs than it
has slots, and no queued job waits while a worker it may go to has a free slot.

The node lives on an event loop this machine owns; every rule runs inside it, and the `settle` rule lets the
background writes and finishes complete. Invariants hold whether or not the node has settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ferryman import protocol as p
from ferryman.jobs import JobState
from ferryman.types import JobId, OrgId, Priority
from tests.dispatch.harness import QUIET_NODE, FakeWorker, NodeHarness, open_harness

T = TypeVar("T")

INDEX = st.integers(min_value=0, max_value=1_000)
HELD_STATES = (JobState.DISPATCHED, JobState.RUNNING)


@dataclass
class SimWorker:
    """What a worker agent knows: the jobs it was handed and not yet told to drop, by fence."""

    fake: FakeWorker
    slots: int
    held: dict[str, int] = field(default_factory=dict)
    seen: int = 0

    @property
    def id(self) -> str:
        return self.fake.id


class NodeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="ferryman-machine-"))
        node_settings = replace(
            QUIET_NODE,
            lease_seconds=30.0,
            poison_threshold=3,
            max_attempts=5,
            quarantine_after_failures=1,  # low, so quarantines, probes and their lifting happen in a run
            quarantine_cooldown_seconds=20.0,
        )
        self.exit = contextlib.AsyncExitStack()
        self.h: NodeHarness = self.run(
            self.exit.enter_async_context(open_harness(self.dir, settings=node_settings))
        )
        self.workers: dict[str, SimWorker] = {}
        self.jobs: list[str] = []
        self.fences: dict[str, int] = {}  # the highest fence each job was dispatched with
        self.worker_count = 0

    def teardown(self) -> None:
        try:
            self.run(self.exit.aclose())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, awaitable: Awaitable[T]) -> T:
        async def call() -> T:
            return await awaitable

        return self.loop.run_until_complete(call())

    def act(self, action: Callable[[], T], *, turn: bool = True) -> T:
        """Run a synchronous node call inside the loop, then (with `turn`) give the loop one turn."""

        async def call() -> T:
            result = action()
            if turn:
                await asyncio.sleep(0)
            return result

        result = self.loop.run_until_complete(call())
        self.read_frames()
        return result

    def read_frames(self) -> None:
        """Each worker reads what the node sent it, as the worker agent does."""
        for worker in self.workers.values():
            for frame in worker.fake.frames[worker.seen :]:
                message = p.decode_node_message(frame)
                if isinstance(message, p.JobDispatch):
                    assert message.fence > self.fences.get(message.job_id, -1), "fences only grow"
                    self.fences[message.job_id] = message.fence
                    worker.held[message.job_id] = message.fence
                elif isinstance(message, p.JobCancel):
                    if worker.held.get(message.job_id) == message.fence:
                        del worker.held[message.job_id]
                elif isinstance(message, p.ErrorMessage) and message.code == "stale_fence" and message.job_id:
                    worker.held.pop(message.job_id, None)
            worker.seen = len(worker.fake.frames)

    def pick_worker(self, index: int) -> SimWorker:
        return list(self.workers.values())[index % len(self.workers)]

    def has_held_job(self) -> bool:
        return any(w.held for w in self.workers.values())

    def pick_held(self, index: int) -> tuple[SimWorker, str, int]:
        held = [(w, job_id, fence) for w in self.workers.values() for job_id, fence in sorted(w.held.items())]
        return held[index % len(held)]

    def job_view(self, job_id: str) -> tuple[Any, ...]:
        live = self.h.node.live_job(JobId(job_id))
        finished = [j.state for j in self.h.finished if j.id == job_id]
        return (None if live is None else (live.state, live.fence, live.worker_id, live.attempts), finished)

    # -- rules

    @initialize(slots=st.integers(min_value=1, max_value=3), jobs=st.integers(min_value=1, max_value=3))
    def start_busy(self, slots: int, jobs: int) -> None:
        """Begin with a worker and some jobs, so the interesting rules apply from the first step."""
        self.attach(slots)
        for _ in range(jobs):
            self.submit(Priority.INTERACTIVE, "org_a", None)

    @rule(
        priority=st.sampled_from(Priority),
        org=st.sampled_from(["org_a", "org_b"]),
        deadline=st.sampled_from([None, 45.0, 120.0]),
    )
    def submit(self, priority: Priority, org: str, deadline: float | None) -> None:
        job = self.run(self.h.submit(org=OrgId(org), priority=priority, deadline_seconds=deadline))
        self.jobs.append(job.id)
        self.read_frames()

    @precondition(lambda self: len(self.workers) < 4)
    @rule(slots=st.integers(min_value=1, max_value=3))
    def attach(self, slots: int) -> None:
        self.worker_count += 1
        worker_id = f"w{self.worker_count}"
        fake = self.act(lambda: self.h.attach(worker_id, slots=slots))
        self.workers[worker_id] = SimWorker(fake, slots)
        self.read_frames()

    @precondition(lambda self: bool(self.workers))
    @rule(index=INDEX, slots=st.integers(min_value=1, max_value=3))
    def reconnect(self, index: int, slots: int) -> None:
        """The same worker id registers again: the node closes and detaches the old connection."""
        old = self.pick_worker(index)
        del self.workers[old.id]
        fake = self.act(lambda: self.h.attach(old.id, slots=slots))
        assert old.fake.closes == [None]
        self.workers[old.id] = SimWorker(fake, slots)
        self.read_frames()

    @precondition(lambda self: bool(self.workers))
    @rule(index=INDEX)
    def detach(self, index: int) -> None:
        worker = self.pick_worker(index)
        del self.workers[worker.id]
        self.act(lambda: self.h.node.detach(worker.fake.conn))

    @precondition(lambda self: bool(self.workers))
    @rule(index=INDEX, kind=st.sampled_from(["pause", "resume", "drain"]))
    def pause_resume_or_drain(self, index: int, kind: str) -> None:
        worker = self.pick_worker(index)
        message = {"pause": p.Pause(), "resume": p.Resume(), "drain": p.Drain()}[kind]
        self.act(lambda: self.h.send(worker.fake, message))

    @precondition(has_held_job)
    @rule(index=INDEX)
    def accept(self, index: int) -> None:
        worker, job_id, fence = self.pick_held(index)
        self.act(lambda: self.h.send(worker.fake, p.JobAccepted(job_id=job_id, fence=fence)))

    @precondition(has_held_job)
    @rule(index=INDEX)
    def progress(self, index: int) -> None:
        worker, job_id, fence = self.pick_held(index)
        self.act(lambda: self.h.send(worker.fake, p.JobProgress(job_id=job_id, fence=fence, progress=0.5)))

    @precondition(has_held_job)
    @rule(index=INDEX)
    def result_with_current_fence(self, index: int) -> None:
        worker, job_id, fence = self.pick_held(index)
        del worker.held[job_id]
        self.act(
            lambda: self.h.send(
                worker.fake,
                p.JobResult(job_id=job_id, fence=fence, output={"worker": worker.id, "fence": fence}),
            )
        )

    @precondition(has_held_job)
    @rule(index=INDEX, retryable=st.booleans())
    def error(self, index: int, retryable: bool) -> None:
        worker, job_id, fence = self.pick_held(index)
        del worker.held[job_id]
        self.act(
            lambda: self.h.send(
                worker.fake,
                p.JobError(job_id=job_id, fence=fence, code="boom", message="it broke", retryable=retryable),
            )
        )

    @precondition(lambda self: bool(self.workers) and bool(self.fences))
    @rule(
        worker_index=INDEX,
        job_index=INDEX,
        back=st.integers(min_value=0, max_value=3),
        kind=st.sampled_from(["result", "error", "accepted"]),
    )
    def message_with_stale_fence(self, worker_index: int, job_index: int, back: int, kind: str) -> None:
        """A frame under a fence the job no longer has (or a job this worker doesn't hold) changes nothing."""
        worker = self.pick_worker(worker_index)
        job_id = sorted(self.fences)[job_index % len(self.fences)]
        fence = self.fences[job_id] - back
        live = self.h.node.live_job(JobId(job_id))
        if live is not None and (live.state in HELD_STATES, live.worker_id, live.fence) == (
            True,
            worker.id,
            fence,
        ):
            return  # not stale: this worker does hold the job under this fence
        message: p.Message
        if kind == "result":
            message = p.JobResult(job_id=job_id, fence=fence, output={"stale": True})
        elif kind == "error":
            message = p.JobError(job_id=job_id, fence=fence, code="boom", message="late", retryable=False)
        else:
            message = p.JobAccepted(job_id=job_id, fence=fence)
        sent = len(worker.fake.frames)

        def send() -> tuple[Any, Any]:  # nothing else runs between the two views
            before = self.job_view(job_id)
            self.h.send(worker.fake, message)
            return before, self.job_view(job_id)

        before, after = self.act(send, turn=False)

        assert (after, [p.decode_node_message(f) for f in worker.fake.frames[sent:]]) == (
            before,
            [
                p.ErrorMessage(
                    code="stale_fence",
                    message="this job is no longer yours; drop it",
                    job_id=job_id,
                    fence=fence,
                )
            ],
        )

    @rule(seconds=st.sampled_from([1.0, 10.0, 31.0, 50.0]))
    def advance_and_tick(self, seconds: float) -> None:
        self.h.clock.advance(seconds)
        self.act(self.h.node.tick)

    @precondition(lambda self: bool(self.jobs))
    @rule(index=INDEX)
    def cancel(self, index: int) -> None:
        job_id = self.jobs[index % len(self.jobs)]
        self.run(self.h.node.cancel(JobId(job_id)))
        self.read_frames()

    @rule()
    def settle(self) -> None:
        self.run(self.h.settle())
        self.read_frames()
        finished = {j.id for j in self.h.finished}
        unsettled = [j for j in self.jobs if j not in finished and self.h.node.live_job(JobId(j)) is None]
        assert unsettled == [], "every job is either live on the node or finished"

    # -- invariants

    @invariant()
    def no_job_finishes_twice(self) -> None:
        assert [job for job, count in Counter(j.id for j in self.h.finished).items() if count > 1] == []

    @invariant()
    def job_succeeds_only_with_result_sent_under_its_last_fence(self) -> None:
        wrong = [
            (j.id, j.fence, j.result)
            for j in self.h.finished
            if j.state is JobState.SUCCEEDED and j.result != {"worker": j.worker_id, "fence": j.fence}
        ]
        assert wrong == []

    @invariant()
    def no_worker_holds_more_jobs_than_slots(self) -> None:
        assert [(w.id, len(w.held), w.slots) for w in self.workers.values() if len(w.held) > w.slots] == []

    @invariant()
    def no_queued_job_waits_while_a_free_worker_may_take_it(self) -> None:
        """A queued job may wait for a worker only while none that it may go to has a free slot: a fresh job
        may go to any worker, a retry to one it has not failed on (or to any, once no other takes work)."""
        node = self.h.node
        stalled = []
        for job_id, live in node._live.items():
            if live.state is not JobState.QUEUED:
                continue
            free = [w for w in node._workers.values() if w.accepts_jobs and live.job.model in w.models]
            if not live.retrying:
                may_take = free
            elif node._other_worker_exists(live):
                may_take = [w for w in free if w.id not in live.avoid and not w.quarantined]
            else:
                may_take = free
            if may_take:
                stalled.append((job_id, sorted(w.id for w in may_take)))
        assert stalled == []

    @invariant()
    def every_held_job_is_dispatched_or_running_on_that_worker(self) -> None:
        wrong = []
        for worker in self.workers.values():
            for job_id, fence in worker.held.items():
                live = self.h.node.live_job(JobId(job_id))
                view = None if live is None else (live.state in HELD_STATES, live.worker_id, live.fence)
                if view != (True, worker.id, fence):
                    wrong.append((worker.id, job_id, fence, view))
        assert wrong == []


NodeMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_queue_node_state_machine = NodeMachine.TestCase
