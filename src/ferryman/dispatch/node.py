"""The region queue node: ready queues, connected workers, leases and fences for one region.

It is an actor in the asyncio sense: all of its state is touched only from the event loop, by methods that do
not await half-way through a decision, so no lock is needed. Durable writes go through the region store's
writer; an outcome is announced (to waiters, streams, webhooks) only once it is committed. Dispatch does not
wait for its write: fences carry the node's epoch, so they stay unique across restarts (docs/adr/0002).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from ferryman import protocol as p
from ferryman import store
from ferryman.clock import Clock
from ferryman.dispatch.fairshare import ModelQueues
from ferryman.dispatch.live import LiveJob
from ferryman.dispatch.metrics import NodeMetrics
from ferryman.dispatch.registry import Quarantine, WorkerConn, WorkerRefused
from ferryman.dispatch.signals import FleetSnapshot, NodeObserver, WorkerSnapshot
from ferryman.dispatch.timers import TimerHeap
from ferryman.errors import BacklogFull, StorageUnavailable
from ferryman.jobs import (
    CompletionObserver,
    Completions,
    Job,
    JobEvents,
    JobFailure,
    JobRepository,
    JobState,
    ModelInfo,
    QueueInfo,
    Timings,
)
from ferryman.types import JobId, Priority, Region, Task

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class NodeSettings:
    lease_seconds: float = 30.0
    tick_seconds: float = 0.5
    poison_threshold: int = 3
    max_attempts: int = 5
    backlog_cap: int = 100_000
    event_retention_seconds: float = 10.0
    quarantine_after_failures: int = 5
    # a quarantined worker gets no work for this long, then one probe job; a failed probe doubles it (docs/jobs.md)
    quarantine_cooldown_seconds: float = 60.0
    quarantine_max_cooldown_seconds: float = 3600.0
    max_models_per_worker: int = 16
    # a model no worker has served for this long leaves the catalog (and /v1/models)
    model_retention_seconds: float = 7 * 86400.0
    # an outcome the store did not take is retried after this, doubling up to the max (docs/jobs.md)
    outcome_retry_first_seconds: float = 0.05
    outcome_retry_max_seconds: float = 5.0
    # how long a cancel waits for its outcome to commit before answering storage_unavailable
    cancel_commit_wait_seconds: float = 5.0


EPOCH_SHIFT = 32
PICK_AMONG = 8
COMPACT_SLACK = 1024  # timer entries of finished jobs tolerated before the heaps are rebuilt
# worker ids remembered with their credential once disconnected (the oldest are forgotten first)
MAX_BOUND_IDS = 10_000
CATALOG_CHECK_SECONDS = 60.0


UNSTORABLE = "outcome_unstorable"
INVALID_OUTPUT = "invalid_output"


class _NodeStopping(Exception):
    """The node stopped while an outcome waited for a retry: the job stays unfinished and a restart re-queues it."""


def _unstorable(job: Job, refused: BaseException) -> Job:
    """The same outcome, failed and without its result: what is written when the store refuses the whole."""
    return dataclasses.replace(
        job,
        state=JobState.FAILED,
        result=None,
        error=JobFailure(
            UNSTORABLE,
            f"the store refused this job's outcome ({type(refused).__name__}); it was recorded without it",
        ),
    )


def _not_stored(job: Job) -> Job:
    failure = JobFailure(StorageUnavailable.code, "the store did not take the job; submit it again")
    return dataclasses.replace(job, state=JobState.FAILED, result=None, error=failure)


def _log_failed_write(written: asyncio.Future[Any]) -> None:
    if not written.cancelled() and written.exception() is not None:
        log.error("job.state_write_failed", error=type(written.exception()).__name__)


class QueueNode:
    def __init__(
        self,
        region: Region,
        *,
        repo: JobRepository,
        events: JobEvents,
        clock: Clock,
        settings: NodeSettings,
        metrics: NodeMetrics,
        completions: Sequence[CompletionObserver] = (),
    ) -> None:
        """`completions`: what is told of each job once its outcome is committed, in order (jobs.completion)."""
        self.region = region
        self._repo, self._events, self._clock, self._settings = repo, events, clock, settings
        self._metrics = metrics
        self._completions = Completions(
            completions, on_failure=lambda name: metrics.completion_failures.labels(region.value, name).inc()
        )
        self._queues: dict[str, ModelQueues] = {}
        self._live: dict[str, LiveJob] = {}
        self._workers: dict[str, WorkerConn] = {}
        # per model, the workers that take jobs now, in rotation order: dispatch looks at a few, not at all
        self._free: dict[str, dict[WorkerConn, None]] = {}
        self._catalog: dict[str, frozenset[Task]] = {}
        # models whose local workers are starting (declared by `ferryman up` before they connect)
        self._expected: dict[str, frozenset[Task]] = {}
        self._wait_hints: dict[str, str] = {}  # model -> why no worker is coming (set by the autoscaler)
        self._service_seconds: dict[str, float] = {}
        self._leases = TimerHeap()
        self._deadlines = TimerHeap()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._fence_base = 0
        self._observers: tuple[NodeObserver, ...] = ()
        # by worker id: the credential that first registered it (a rogue token cannot take over the id), and
        # the quarantine it is under (kept across reconnects)
        self._owners: dict[str, str | None] = {}
        self._quarantines: dict[str, Quarantine] = {}
        # when each catalog model was last served (wall clock), for leaving the catalog after model_retention
        self._model_seen: dict[str, float] = {}
        self._catalog_checked_mono = 0.0
        self._catalog_stored_at = 0.0
        self._unwritten: set[str] = set()  # jobs whose outcome the store refused and has not taken yet
        self._stopping = asyncio.Event()

    # -- lifecycle

    async def start(self) -> None:
        """Load the model catalog and re-queue every unfinished job (running ones get a new fence)."""
        now, retention = self._clock.now(), self._settings.model_retention_seconds
        stale = []
        for name, tasks, seen_at in await self._repo.find_models():
            if now - seen_at > retention:
                stale.append(name)
                continue
            self._catalog[name] = frozenset(Task(t) for t in tasks)
            self._model_seen[name] = seen_at
        if stale:
            await self._repo.remove_models(stale)
            log.info("node.models_retired", region=self.region, models=len(stale))
        self._catalog_stored_at = now
        self._fence_base = await self._repo.start_epoch(self._clock.now()) << EPOCH_SHIFT
        recovered = await self._repo.find_unfinished()
        for job, payload in recovered:
            # whatever worker held it before the restart holds it no more
            live = self._make_live(dataclasses.replace(job, worker_id=None, state=JobState.QUEUED), payload)
            live.attempts, live.crashed = job.attempts, set(job.crashed_workers)
            if job.state is not JobState.QUEUED:
                await self._repo.update(job.id, state=JobState.QUEUED.value, fence=live.fence, worker_id=None)
            self._queue(live)
        if recovered:
            log.info("node.recovered", region=self.region, jobs=len(recovered))
        self._ticker = asyncio.create_task(self._tick_forever(), name=f"node-ticker-{self.region}")

    async def stop(self) -> None:
        self._stopping.set()  # outcomes waiting for a retry give up; a restart re-queues their jobs
        if self._ticker:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._completions.aclose()

    def add_observer(self, observer: NodeObserver) -> None:
        """Tell `observer` about arrivals and outcomes from now on (the autoscaler's live signals); outcomes
        reach it as the last of the completion observers."""
        self._observers = (*self._observers, observer)
        self._completions.add(observer)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._forget_task)
        return task

    def _forget_task(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            # a bug: a refused outcome is retried inside its task (_commit_outcome) and does not end up here
            log.error("node.task_failed", region=self.region, error=type(error).__name__, exc_info=error)

    # -- what the job service asks (jobs.QueueClient)

    def model_tasks(self, model: str) -> frozenset[Task] | None:
        """The tasks a known or expected model serves (None: neither seen nor expected in this region); constant
        time, for submission."""
        return self._catalog.get(model) or self._expected.get(model)

    def expect_model(self, model: str, tasks: frozenset[Task]) -> None:
        """A worker for `model` is starting here: jobs for it are taken and wait as `worker_starting`."""
        self._expected[model] = tasks

    def forget_expected(self, model: str) -> None:
        """The starting worker gave up: jobs for `model` wait as `no_worker_for_model` again."""
        self._expected.pop(model, None)

    def set_wait_hint(self, model: str, reason: str | None) -> None:
        """Why jobs for `model` wait while no worker serves it, as the autoscaler knows it (e.g.
        `no_eligible_offer`: no machine may be rented for this region); None clears it."""
        if reason is None:
            self._wait_hints.pop(model, None)
        else:
            self._wait_hints[model] = reason

    def _starting(self, model: str) -> bool:
        return model in self._expected or any(model in w.loading for w in self._workers.values())

    def model_readiness(self) -> dict[str, list[str]]:
        """`warm`: models a connected, undrained worker takes jobs for now; `starting`: expected or loading
        models that are not warm yet. O(workers), for /readyz and `ferryman up`."""
        warm = {m for w in self._workers.values() if not (w.draining or w.quarantined) for m in w.models}
        loading = {m for w in self._workers.values() for m in w.loading}
        starting = (loading | set(self._expected)) - warm
        return {"warm": sorted(warm), "starting": sorted(starting)}

    def model_info(self, model: str) -> ModelInfo | None:
        tasks = self._catalog.get(model)
        if tasks is None:
            return None
        serving = [w for w in self._workers.values() if model in w.models]
        quarantined = sum(w.quarantined for w in serving)
        warm = any(not (w.draining or w.quarantined) for w in serving)
        return ModelInfo(model, tasks, len(serving), warm, quarantined)

    def models(self) -> list[ModelInfo]:
        return [info for name in sorted(self._catalog) if (info := self.model_info(name)) is not None]

    def admit(self, *, model: str, priority: Priority) -> None:
        queues = self._queues.get(model)
        if queues is not None and len(queues.classes[priority.rank]) >= self._settings.backlog_cap:
            raise BacklogFull(
                f"the {priority.value} queue of {model!r} in {self.region} holds {self._settings.backlog_cap} "
                "jobs; retry later or use the batch class",
                details={"retry_after_seconds": 5},
            )

    def enqueue(self, job: Job, payload: dict[str, Any], weight: float = 1.0) -> None:
        self._events.open(job.id)
        live = self._make_live(job, payload)
        live.weight = weight
        self._metrics.jobs_total.labels(self.region, "queued").inc()
        self._queue(live)
        for observer in self._observers:
            observer.job_queued(job, payload, live.enqueued_mono)

    def _make_live(self, job: Job, payload: dict[str, Any]) -> LiveJob:
        mono, now = self._clock.monotonic(), self._clock.now()
        live = LiveJob(
            job=job,
            payload=payload,
            state=JobState.QUEUED,
            fence=self._fence_base,
            deadline_mono=mono + (job.deadline_at - now),
            enqueued_mono=mono,
        )
        self._live[job.id] = live
        self._deadlines.push(live.deadline_mono, job.id, 0)
        return live

    def _queue(self, live: LiveJob, *, front: bool = False, retry: bool = False) -> None:
        live.state = JobState.QUEUED
        live.enqueued_mono = self._clock.monotonic()
        queues = self._queues.setdefault(live.job.model, ModelQueues())
        if retry:
            queues.push_retry(live)
        else:
            queues.push(live, front=front)
        self._pump_model(live.job.model)

    def live_job(self, job_id: JobId) -> Job | None:
        """The job as the node holds it; one whose outcome is not committed yet is shown as it was before."""
        live = self._live.get(job_id)
        if live is None:
            return None
        return live.pending if live.state.is_terminal else live.snapshot()

    def queue_info(self, job_id: JobId) -> QueueInfo | None:
        live = self._live.get(job_id)
        if live is None or live.state is not JobState.QUEUED:
            return None
        model = live.job.model
        position = self._queues[model].position(live)
        serving = [w for w in self._workers.values() if model in w.models]
        if not serving:
            hint = self._wait_hints.get(model)
            reason = hint or ("worker_starting" if self._starting(model) else "no_worker_for_model")
            return QueueInfo(position, reason, None)
        if any(w.quarantined for w in serving) and not any(w.in_service for w in serving):
            return QueueInfo(position, "workers_quarantined", None)
        if all(w.draining or w.paused for w in serving):
            return QueueInfo(position, "workers_draining", None)
        slots = sum(w.slots for w in serving if not w.draining)
        service = self._service_seconds.get(model)
        estimate = None if service is None else (position // max(1, slots)) * service
        reason = "all_workers_busy" if not any(w.accepts_jobs for w in serving) else "queued_behind_others"
        return QueueInfo(position, reason, estimate)

    async def cancel(self, job_id: JobId) -> Job | None:
        live = self._live.get(job_id)
        if live is None or live.state.is_terminal:
            return None
        if live.state is JobState.QUEUED:
            self._queues[live.job.model].discard(live)
        else:
            self._stop_on_worker(live, "cancelled")
        # shielded: a caller that goes away mid-cancel must not leave the job recorded but never announced
        ended = self._end(live, JobState.CANCELLED, error=JobFailure("cancelled", "cancelled by the client"))
        try:
            return await asyncio.wait_for(asyncio.shield(ended), self._settings.cancel_commit_wait_seconds)
        except TimeoutError:
            raise StorageUnavailable(
                f"job {job_id} is cancelled, but the store has not recorded it yet; it will be once the store "
                "answers again",
                details={"retry_after_seconds": 2},
            ) from None

    def snapshot(self) -> dict[str, Any]:
        jobs = {s.value: 0 for s in (JobState.QUEUED, JobState.DISPATCHED, JobState.RUNNING)}
        for live in self._live.values():
            if live.state.value in jobs:
                jobs[live.state.value] += 1
        depth = {(m, pr.value): q.depth(pr.rank) for m, q in self._queues.items() for pr in Priority}
        return {
            "region": self.region.value,
            "jobs": jobs,
            "depth": depth,
            "workers": len(self._workers),
            "free_slots": sum(w.free_slots for w in self._workers.values() if not w.draining),
            **self.worker_health(),
            "unwritten_outcomes": len(self._unwritten),
        }

    def worker_health(self) -> dict[str, Any]:
        """Which workers are quarantined and how many take work (for /readyz and metrics). O(workers)."""
        return {
            "healthy_workers": sum(w.in_service for w in self._workers.values()),
            "quarantined_workers": sorted(w.id for w in self._workers.values() if w.quarantined),
        }

    def fleet_snapshot(self, model: str) -> FleetSnapshot:
        """The queue and the workers of `model` now, for the autoscaler. O(workers); meant for every few seconds."""
        queues = self._queues.get(model)
        depth = {pr: queues.depth(pr.rank) if queues else 0 for pr in Priority}
        best = queues.best() if queues is not None else None
        workers = tuple(
            WorkerSnapshot(
                w.id,
                w.slots,
                len(w.running),
                not (w.draining or w.paused or w.quarantined),
                w.connected_mono,
                w.quarantined,
            )
            for w in self._workers.values()
            if model in w.models
        )
        head = best[1].enqueued_mono if best is not None else None
        return FleetSnapshot(self.region, model, self._clock.monotonic(), depth, head, workers)

    def set_worker_draining(self, worker_id: str, draining: bool) -> bool:
        """Stop (or resume) giving a connected worker new jobs, as if it had sent `drain`; its running jobs go
        on. The autoscaler drains a worker this way before destroying it once idle. False if it is not here."""
        worker = self._workers.get(worker_id)
        if worker is None:
            return False
        worker.draining = draining
        self._refresh(worker)
        self._pump_worker(worker)
        self._pump_models_of(worker)
        return True

    # -- matching jobs to workers

    def _pump_model(self, model: str) -> None:
        queues = self._queues.get(model)
        if queues is not None and queues.retrying:
            self._pump_retries(queues)
        while queues is not None and len(queues):
            free = self._free.get(model)
            if not free:
                return
            best = queues.best()
            if best is None:
                return  # what is left waits in the retry lane
            live = queues.pop(best[0])
            assert live is not None
            self._dispatch(live, self._pick_worker(live, free))

    def _pump_worker(self, worker: WorkerConn) -> None:
        while worker.accepts_jobs:
            choice: tuple[int, float, str] | None = None
            for model in worker.models:
                queues = self._queues.get(model)
                best = queues.best() if queues is not None else None
                if best is not None and (choice is None or (best[0], best[1].enqueued_mono) < choice[:2]):
                    choice = (best[0], best[1].enqueued_mono, model)
            retry = self._retry_for(worker)
            if retry is not None and (choice is None or retry.job.priority.rank <= choice[0]):
                self._queues[retry.job.model].take_retry(retry)
                self._dispatch(retry, worker)
                continue
            if choice is None:
                return
            live = self._queues[choice[2]].pop(choice[0])
            assert live is not None
            if worker.id in live.avoid:
                self._dispatch(live, self._pick_worker(live, self._free.get(live.job.model, {})))
            else:
                self._dispatch(live, worker)

    def _pump_retries(self, queues: ModelQueues) -> None:
        """Give re-queued jobs to free workers they have not failed on (not to a quarantined one's probe), or
        to any free worker once no other worker that takes work serves the model. Skipping a worker costs at
        most one look per worker the job failed on, so this stays O(1) per job."""
        for live in list(queues.retrying):
            free = self._free.get(live.job.model)
            if not free:
                return
            worker = next((w for w in free if w.id not in live.avoid and not w.quarantined), None)
            if worker is None and not self._other_worker_exists(live):
                worker = self._pick_worker(live, free)
            if worker is not None:
                del free[worker]
                free[worker] = None  # to the back of the rotation
                queues.take_retry(live)
                self._dispatch(live, worker)

    def _retry_for(self, worker: WorkerConn) -> LiveJob | None:
        """The oldest re-queued job `worker` may take: one it has not failed on, or one that no other worker
        taking work could run."""
        for model in worker.models:
            queues = self._queues.get(model)
            for live in queues.retrying if queues is not None else ():
                fresh = worker.id not in live.avoid and not worker.quarantined
                if fresh or not self._other_worker_exists(live):
                    return live
        return None

    def _other_worker_exists(self, live: LiveJob) -> bool:
        """Whether a connected worker the job has not failed on takes its model's work, free or not."""
        model = live.job.model
        return any(
            w.in_service and model in w.models and w.id not in live.avoid for w in self._workers.values()
        )

    def _pump_models_of(self, worker: WorkerConn) -> None:
        """`worker` stopped taking work (left, drained, paused, quarantined): retries that waited for it
        may now go to a worker they failed on."""
        for model in worker.models:
            queues = self._queues.get(model)
            if queues is not None and queues.retrying:
                self._pump_model(model)

    def _pick_worker(self, live: LiveJob, free: dict[WorkerConn, None]) -> WorkerConn:
        """The least-loaded of the next few free workers in rotation, preferring ones this job has not failed
        on. Looking at a bounded few keeps dispatch O(1) with a thousand workers."""
        candidates = list(itertools.islice(free, PICK_AMONG))
        fresh = [w for w in candidates if w.id not in live.avoid] or [
            w for w in free if w.id not in live.avoid
        ]
        chosen = min(fresh or candidates, key=lambda w: w.load)
        del free[chosen]
        free[chosen] = None  # to the back of the rotation
        return chosen

    def _refresh(self, worker: WorkerConn) -> None:
        """Keep the free-worker index true after the worker's slots or flags changed."""
        accepts = worker.accepts_jobs and worker.id in self._workers
        for model in worker.models:
            free = self._free.setdefault(model, {})
            if accepts:
                free.setdefault(worker, None)
            else:
                free.pop(worker, None)

    def _dispatch(self, live: LiveJob, worker: WorkerConn) -> None:
        """Hand a job to a worker under a new fence. The fence needs no commit first: fences carry this node's
        epoch, so no fence handed out before a restart can equal or outrank one handed out after it (ADR 0002).
        """
        live.state = JobState.DISPATCHED
        live.fence += 1
        live.attempts += 1
        live.worker = worker
        live.dispatched_at = self._clock.now()
        live.dispatched_mono = self._clock.monotonic()
        live.lease_expires_mono = live.dispatched_mono + self._settings.lease_seconds
        worker.running[live.id] = None
        if worker.quarantined:  # its cool-down is over: this job is its probe
            worker.probe_due, worker.probe_job = False, live.id
            log.info("worker.probe_dispatched", worker_id=worker.id, region=self.region, job_id=live.id)
        if not worker.accepts_jobs:
            self._refresh(worker)
        self._leases.push(live.lease_expires_mono, live.id, live.fence)
        # written without waiting: the epoch in the fence keeps it safe (ADR 0002); the write keeps attempts
        # counted across a restart of the node
        self._repo.record_dispatch(
            live.job.id,
            fence=live.fence,
            attempts=live.attempts,
            worker_id=worker.id,
            dispatched_at=live.dispatched_at,
        ).add_done_callback(_log_failed_write)
        self._metrics.dispatch_latency.labels(self.region).observe(live.dispatched_mono - live.enqueued_mono)
        worker.send(
            p.encode(
                p.JobDispatch(
                    job_id=live.id,
                    attempt=live.attempts,
                    fence=live.fence,
                    lease_seconds=self._settings.lease_seconds,
                    task=live.job.task.value,
                    model=live.job.model,
                    payload=live.payload,
                )
            )
        )
        self._events.publish(live.id, "status", {"state": "dispatched", "attempt": live.attempts})

    def _release(self, live: LiveJob) -> WorkerConn | None:
        worker = live.worker
        if worker is not None and live.id in worker.running:
            del worker.running[live.id]
            if worker.probe_job == live.id:
                # the probe ended without a verdict (cancelled, timed out, bad input): the next job probes
                worker.probe_job, worker.probe_due = None, worker.quarantined
            self._refresh(worker)
        return worker

    def _stop_on_worker(self, live: LiveJob, reason: str) -> None:
        worker = self._release(live)
        if worker is not None and worker.id in self._workers:
            worker.send(p.encode(p.JobCancel(job_id=live.id, fence=live.fence, reason=reason)))
            self._pump_worker(worker)

    def _requeue(self, live: LiveJob, *, crashed: bool) -> None:
        """Put a job back at the front of its queue with a new fence, or fail it if it is poison."""
        worker = self._release(live)
        if worker is not None:
            live.avoid.add(worker.id)
            if crashed:
                live.crashed.add(worker.id)
        if len(live.crashed) >= self._settings.poison_threshold:
            self._end(
                live,
                JobState.FAILED,
                error=JobFailure("poison", f"job crashed {len(live.crashed)} distinct workers; not retried"),
            )
            return
        if live.attempts >= self._settings.max_attempts:
            self._end(
                live,
                JobState.FAILED,
                error=JobFailure("max_attempts", f"job did not complete in {live.attempts} attempts"),
            )
            return
        # the fence must change before re-queueing, or a late result could complete the job twice
        live.fence += 1
        live.worker = None
        self._repo.update(
            live.job.id,
            state=JobState.QUEUED.value,
            fence=live.fence,
            worker_id=None,
            attempts=live.attempts,
            crashed_workers=sorted(live.crashed),
        ).add_done_callback(_log_failed_write)
        self._events.publish(live.id, "status", {"state": "queued", "requeued": True})
        # a retry waits for a worker it has not failed on, while one that takes work serves its model
        self._queue(live, front=True, retry=bool(live.avoid) and self._other_worker_exists(live))

    def _end(
        self, live: LiveJob, state: JobState, *, announce_first: bool = False, **outcome: Any
    ) -> asyncio.Task[Job]:
        """End a job now (no message for it is accepted from here on) and record it in the background."""
        live.pending = live.snapshot()  # what readers see until the outcome is committed
        live.state = state
        return self._spawn(self._finish(live, state, announce_first=announce_first, **outcome))

    async def _finish(
        self,
        live: LiveJob,
        state: JobState,
        *,
        announce_first: bool = False,
        result: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
        error: JobFailure | None = None,
        timings: Timings | None = None,
    ) -> Job:
        """Record a terminal state durably, then tell waiters, webhooks and metrics. At most once per job.

        The write is retried until it commits (docs/jobs.md, "Outcome durability"); meanwhile the job stays in
        memory and readers see it as it stood before its outcome. Only a job the store never acknowledged
        (`abandon`) is announced before its write.
        """
        live.state = state
        job = live.snapshot(
            finished_at=self._clock.now(), result=result, usage=usage, error=error, timings=timings
        )
        if announce_first:
            self._announce(job)
        try:
            job = await self._commit_outcome(job, result)
        except _NodeStopping:
            log.warning("job.outcome_unrecorded_at_stop", job_id=job.id, region=self.region)
            return job
        finally:
            self._live.pop(live.id, None)
        if not announce_first:
            self._announce(job)
        return job

    async def _commit_outcome(self, job: Job, result: dict[str, Any] | None) -> Job:
        """Write `job`'s outcome until the store takes it; returns the job as committed.

        An outage is waited out with exponential backoff. A write the store refuses for what it holds (not an
        outage) is replaced once by the same outcome without its result, failed as `outcome_unstorable`, so the
        job still ends; that smaller record is then retried like any other.
        """
        delay = self._settings.outcome_retry_first_seconds
        failures = 0
        written = False
        try:
            while True:
                try:
                    written = await self._repo.finish(job, result=result)
                    # not written: its insert never committed, and no success is announced for a job the store
                    # does not hold
                    return job if written else _not_stored(job)
                except Exception as exc:
                    outage = store.is_outage(exc)
                    failures += 1
                    self._unwritten.add(job.id)
                    self._metrics.outcome_write_failures.labels(
                        self.region, "outage" if outage else "refused"
                    ).inc()
                    # logged on the 1st, 2nd, 4th, 8th… failure, so a long outage does not flood the log
                    if failures & (failures - 1) == 0:
                        log.warning(
                            "job.outcome_write_failed",
                            job_id=job.id,
                            region=self.region,
                            error=type(exc).__name__,
                            outage=outage,
                            failures=failures,
                            retry_in_seconds=round(delay, 3),
                        )
                    if not outage and (job.error is None or job.error.code != UNSTORABLE):
                        job, result = _unstorable(job, exc), None
                        continue
                    await self._pause(delay)
                    delay = min(delay * 2, self._settings.outcome_retry_max_seconds)
        finally:
            if failures:
                self._unwritten.discard(job.id)
                if written:
                    log.info("job.outcome_written", job_id=job.id, region=self.region, failures=failures)

    async def _pause(self, seconds: float) -> None:
        """Sleep between two tries of an outcome write; raise _NodeStopping as soon as the node stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        if self._stopping.is_set():
            raise _NodeStopping

    def _announce(self, job: Job) -> None:
        self._metrics.jobs_total.labels(self.region, job.state.value).inc()
        self._events.finish(job, self._clock.monotonic())
        self._completions.notify(job, self._clock.monotonic())

    def reject_output(self, worker: WorkerConn, job_id: str, fence: int | None, reason: str) -> None:
        """A frame this worker sent for a job it holds broke the protocol's limits (a result nested too deep,
        too big): the job fails as `invalid_output` now instead of lapsing and being retried into the same."""
        live = self._held(worker, job_id, fence)
        if live is None:
            return
        log.warning(
            "job.invalid_output", job_id=job_id, worker_id=worker.id, region=self.region, reason=reason
        )
        self._release(live)
        self._end(
            live,
            JobState.FAILED,
            error=JobFailure(
                INVALID_OUTPUT, f"the worker sent a frame for this job that was refused: {reason}"
            ),
        )
        self._pump_worker(worker)

    def outcome_unwritten(self, job_id: JobId) -> bool:
        """True while the job has ended but the store has refused its outcome (retrying)."""
        return job_id in self._unwritten

    def abandon(self, job_id: JobId, failure: JobFailure) -> bool:
        """Fail a job whose insert the store refused. Nobody was told it exists, so its failure is announced
        at once instead of after a commit to a store that is failing; it is still written (retried) in case the
        insert did land. False if the node no longer holds it as unfinished."""
        live = self._live.get(job_id)
        if live is None or live.state.is_terminal:
            return False
        if live.state is JobState.QUEUED:
            self._queues[live.job.model].discard(live)
        else:
            self._stop_on_worker(live, "cancelled")
        self._end(live, JobState.FAILED, announce_first=True, error=failure)
        return True

    # -- workers

    def attach(
        self,
        register: p.Register,
        *,
        send: Callable[[str], None],
        close: Callable[[], None],
        credential: str | None = None,
    ) -> WorkerConn:
        """Take a registered worker into service. Its id is bound to `credential` (the worker token's id) for
        the node's life: the same credential replaces a connection under that id (its jobs are re-queued under
        new fences), another credential is refused. Raises WorkerRefused."""
        self._check_register(register, credential)
        old = self._workers.get(register.worker_id)
        if old is not None:
            old.close()
            self.detach(old)
        self._bind(register.worker_id, credential)
        worker = WorkerConn(
            id=register.worker_id,
            region=register.region,
            offers=register.models,
            slots=register.slots,
            send=send,
            close=close,
            backend=register.backend,
            connected_mono=self._clock.monotonic(),
            loading=set(register.loading),
            credential=credential,
        )
        if (quarantine := self._quarantines.get(worker.id)) is not None:
            # a reconnect does not lift a quarantine: the probe after the cool-down does
            worker.quarantined = True
            worker.probe_due = quarantine.until_mono <= self._clock.monotonic()
        self._workers[worker.id] = worker
        self._refresh(worker)
        now = self._clock.now()
        for offer in register.models:
            self._model_seen[offer.name] = now
        new = [
            (o.name, [t.value for t in o.tasks])
            for o in register.models
            if self._catalog.get(o.name) != frozenset(o.tasks)
        ]
        for offer in register.models:
            self._catalog[offer.name] = frozenset(offer.tasks)
        if new:
            self._spawn(self._repo.upsert_models(new, self._clock.now()))
        send(p.encode(p.Registered(worker_id=worker.id, lease_seconds=self._settings.lease_seconds)))
        log.info("worker.attached", worker_id=worker.id, region=self.region, slots=worker.slots)
        self._pump_worker(worker)
        return worker

    def _check_register(self, register: p.Register, credential: str | None) -> None:
        cap = self._settings.max_models_per_worker
        if len(register.models) > cap:
            raise WorkerRefused(
                "protocol_error",
                f"register offers {len(register.models)} models; a worker may offer at most {cap}",
            )
        if register.worker_id in self._owners and self._owners[register.worker_id] != credential:
            raise WorkerRefused(
                "worker_id_taken",
                f"worker id {register.worker_id!r} belongs to another worker token; connect with that worker's "
                "token or choose another --worker-id",
            )

    def _bind(self, worker_id: str, credential: str | None) -> None:
        """Remember which credential owns `worker_id`, forgetting the oldest disconnected ids past a bound."""
        self._owners.pop(worker_id, None)
        self._owners[worker_id] = credential
        if len(self._owners) > MAX_BOUND_IDS:
            gone = [i for i in self._owners if i not in self._workers]
            for old in gone[: len(self._owners) - MAX_BOUND_IDS]:
                del self._owners[old]

    def detach(self, worker: WorkerConn) -> None:
        """A worker's connection ended: every job it held goes back to the queue (a crash, for poison counting)."""
        if self._workers.get(worker.id) is not worker:
            return
        del self._workers[worker.id]
        self._refresh(worker)
        for job_id in list(worker.running):
            self._requeue(self._live[job_id], crashed=True)
        self._pump_models_of(worker)
        self._note_unserved({o.name for o in worker.offers})
        log.info("worker.detached", worker_id=worker.id, region=self.region)

    def _note_unserved(self, models: set[str]) -> None:
        """Record when models lost their last worker: their stay in the catalog is counted from then."""
        served = {o.name for w in self._workers.values() for o in w.offers}
        lost = [(m, sorted(t.value for t in self._catalog[m])) for m in models - served if m in self._catalog]
        if lost:
            now = self._clock.now()
            for name, _ in lost:
                self._model_seen[name] = now
            self._spawn(self._repo.upsert_models(lost, now))

    def _retire_models(self) -> None:
        """Drop catalog models that no worker has served for `model_retention_seconds` and that have nothing
        queued; keep the stored last-seen time of served models fresh, so a restart does not drop them."""
        mono = self._clock.monotonic()
        if mono - self._catalog_checked_mono < CATALOG_CHECK_SECONDS and self._catalog_checked_mono:
            return
        self._catalog_checked_mono = mono
        now, retention = self._clock.now(), self._settings.model_retention_seconds
        served = {o.name for w in self._workers.values() for o in w.offers}
        for name in served:
            self._model_seen[name] = now
        retired = [
            m
            for m in self._catalog
            if m not in served
            and now - self._model_seen.get(m, now) > retention
            and not len(self._queues.get(m) or ())
        ]
        for name in retired:
            del self._catalog[name]
            self._model_seen.pop(name, None)
        if retired:
            log.info("node.models_retired", region=self.region, models=len(retired))
            self._spawn(self._repo.remove_models(retired))
        if served and now - self._catalog_stored_at >= retention / 2:
            self._catalog_stored_at = now
            offers = [
                (m, sorted(t.value for t in self._catalog[m])) for m in sorted(served) if m in self._catalog
            ]
            self._spawn(self._repo.upsert_models(offers, now))

    def handle(self, worker: WorkerConn, message: p.Message) -> None:
        if isinstance(message, p.ModelReady):
            if worker.model_loaded(message.model):
                log.info("worker.model_ready", worker_id=worker.id, region=self.region, model=message.model)
                self._refresh(worker)
                self._pump_worker(worker)
            return
        if isinstance(message, p.Drain | p.Pause | p.Resume):
            worker.draining = worker.draining or isinstance(message, p.Drain)
            worker.paused = isinstance(message, p.Pause) or (
                worker.paused and not isinstance(message, p.Resume)
            )
            self._refresh(worker)
            self._pump_worker(worker)
            self._pump_models_of(worker)  # retries that waited for a worker that now takes no work
            return
        live = self._held(worker, getattr(message, "job_id", None), getattr(message, "fence", None))
        if live is None:
            return
        if isinstance(message, p.JobAccepted):
            live.state, live.started_at = JobState.RUNNING, self._clock.now()
            self._renew(live)
            self._events.publish(live.id, "status", {"state": "running"})
        elif isinstance(message, p.JobProgress):
            self._renew(live)
            self._events.publish(
                live.id, "progress", {"progress": message.progress, "message": message.message}
            )
        elif isinstance(message, p.JobChunk):
            self._renew(live)
            self._events.publish(live.id, "chunk", message.data)
        elif isinstance(message, p.JobResult):
            self._complete(live, worker, message)
        elif isinstance(message, p.JobError):
            self._fail(live, worker, message)

    def _held(self, worker: WorkerConn, job_id: object, fence: object) -> LiveJob | None:
        """The job a frame is about, if this worker still holds it under this fence; else reject the frame."""
        live = self._live.get(job_id) if isinstance(job_id, str) else None
        if live is None or live.fence != fence or live.worker is not worker or live.state.is_terminal:
            self._metrics.stale_messages.labels(self.region).inc()
            log.warning("job.stale_message_rejected", job_id=job_id, worker_id=worker.id, fence=fence)
            worker.send(
                p.encode(
                    p.ErrorMessage(
                        code="stale_fence",
                        job_id=job_id if isinstance(job_id, str) else None,
                        fence=fence if isinstance(fence, int) else None,
                        message="this job is no longer yours; drop it",
                    )
                )
            )
            return None
        return live

    def _renew(self, live: LiveJob) -> None:
        live.lease_expires_mono = self._clock.monotonic() + self._settings.lease_seconds

    def _complete(self, live: LiveJob, worker: WorkerConn, message: p.JobResult) -> None:
        now = self._clock.monotonic()
        total_ms = (now - live.dispatched_mono) * 1000 if live.dispatched_mono else 0.0
        timings = Timings(
            wait_ms=(live.dispatched_mono - live.enqueued_mono) * 1000 if live.dispatched_mono else None,
            worker_rtt_ms=max(0.0, total_ms - message.work_ms),
            work_ms=message.work_ms,
        )
        previous = self._service_seconds.get(live.job.model, total_ms / 1000)
        self._service_seconds[live.job.model] = 0.8 * previous + 0.2 * total_ms / 1000
        self._succeeded_on(live, worker)
        self._release(live)
        self._end(live, JobState.SUCCEEDED, result=message.output, usage=message.usage, timings=timings)
        self._pump_worker(worker)

    # -- worker health (docs/jobs.md, "Retries and quarantine")

    def _suspect(self, live: LiveJob, worker: WorkerConn) -> None:
        """A job failed retryably or lapsed on `worker`. Nothing is counted yet: whose fault it is shows when
        the job is tried elsewhere. Failing on a second worker makes it the job's fault."""
        if live.failed_on - {worker.id}:
            live.blamed = True
        live.failed_on.add(worker.id)
        if worker.probe_job == live.id:
            self._probe_failed(worker)

    def _succeeded_on(self, live: LiveJob, worker: WorkerConn) -> None:
        """A job succeeded here: this worker is fine, and each worker it failed on before failed a job that
        runs (one strike each, unless the job also failed on another worker)."""
        worker.failures_in_row = 0
        if worker.probe_job == live.id:
            self._lift(worker)
        if live.blamed:
            return
        for worker_id in sorted(live.failed_on - {worker.id}):
            if (other := self._workers.get(worker_id)) is not None:
                self._strike(other)

    def _strike(self, worker: WorkerConn) -> None:
        if worker.quarantined:
            return
        worker.failures_in_row += 1
        if worker.failures_in_row >= self._settings.quarantine_after_failures:
            self._quarantine(worker)

    def _quarantine(self, worker: WorkerConn) -> None:
        """Connected, but given no work until the cool-down ends; then one probe job decides."""
        quarantine = self._quarantines.setdefault(
            worker.id, Quarantine(cooldown_seconds=self._settings.quarantine_cooldown_seconds, until_mono=0.0)
        )
        quarantine.until_mono = self._clock.monotonic() + quarantine.cooldown_seconds
        worker.quarantined, worker.probe_due = True, False
        self._refresh(worker)
        log.warning(
            "worker.quarantined",
            worker_id=worker.id,
            region=self.region,
            failures=worker.failures_in_row,
            cooldown_seconds=quarantine.cooldown_seconds,
        )
        worker.send(
            p.encode(
                p.ErrorMessage(
                    code="quarantined",
                    message=(
                        f"{worker.failures_in_row} jobs in a row failed or lapsed on this worker and then "
                        f"succeeded on others; no new work for {quarantine.cooldown_seconds:g} s, then one "
                        "probe job, whose success lifts the quarantine"
                    ),
                )
            )
        )
        self._pump_models_of(worker)

    def _probe_failed(self, worker: WorkerConn) -> None:
        quarantine = self._quarantines[worker.id]
        quarantine.cooldown_seconds = min(
            quarantine.cooldown_seconds * 2, self._settings.quarantine_max_cooldown_seconds
        )
        quarantine.until_mono = self._clock.monotonic() + quarantine.cooldown_seconds
        worker.probe_job, worker.probe_due = None, False
        log.warning(
            "worker.probe_failed",
            worker_id=worker.id,
            region=self.region,
            cooldown_seconds=quarantine.cooldown_seconds,
        )

    def _lift(self, worker: WorkerConn) -> None:
        self._quarantines.pop(worker.id, None)
        worker.quarantined = worker.probe_due = False
        worker.probe_job = None
        log.info("worker.quarantine_lifted", worker_id=worker.id, region=self.region)

    def _probe_quarantined(self) -> None:
        """Offer a probe to each connected quarantined worker whose cool-down is over; forget quarantines of
        workers gone for longer than the longest cool-down."""
        now = self._clock.monotonic()
        for worker_id, quarantine in list(self._quarantines.items()):
            worker = self._workers.get(worker_id)
            if worker is None:
                if now - quarantine.until_mono > self._settings.quarantine_max_cooldown_seconds:
                    del self._quarantines[worker_id]
                continue
            if quarantine.until_mono <= now and not (worker.probe_due or worker.probe_job):
                worker.probe_due = True
                self._refresh(worker)
                self._pump_worker(worker)

    def _fail(self, live: LiveJob, worker: WorkerConn, message: p.JobError) -> None:
        if not message.retryable:
            worker.failures_in_row = 0  # the job's fault (bad input), not the worker's
        else:
            self._suspect(live, worker)
        if message.retryable and live.attempts < self._settings.max_attempts:
            self._requeue(live, crashed=False)
        else:
            self._release(live)
            self._end(
                live, JobState.FAILED, error=JobFailure("worker_error", f"{message.code}: {message.message}")
            )
        self._pump_worker(worker)

    async def store_blob(self, worker: WorkerConn, blob: p.JobBlob) -> None:
        """Keep a media output of a running job (sealed, in this region's blob directory)."""
        live = self._held(worker, blob.job_id, blob.fence)
        if live is not None:
            self._renew(live)
            await self._repo.store_blob(live.job.org_id, live.job.id, blob.name, blob.content_type, blob.data)

    # -- timers

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.tick_seconds)
            try:
                self.tick()
            except Exception:
                log.exception("node.tick_failed", region=self.region)

    def tick(self) -> None:
        """Requeue jobs whose lease lapsed; end jobs past their deadline; forget old event streams."""
        now = self._clock.monotonic()
        for _, job_id, fence in self._leases.pop_due(now):
            live = self._live.get(job_id)
            if (
                live is None
                or live.fence != fence
                or live.state not in (JobState.DISPATCHED, JobState.RUNNING)
            ):
                continue
            if live.lease_expires_mono > now:
                self._leases.push(live.lease_expires_mono, job_id, fence)
                continue
            log.warning("lease.expired", job_id=job_id, region=self.region, fence=fence)
            if live.worker is not None:
                self._suspect(live, live.worker)
            self._stop_on_worker(live, "lease_expired")
            self._requeue(live, crashed=False)
        for _, job_id, _ in self._deadlines.pop_due(now):
            live = self._live.get(job_id)
            if live is None or live.state.is_terminal:
                continue
            if live.state is JobState.QUEUED:
                self._queues[live.job.model].discard(live)
                self._end(
                    live,
                    JobState.EXPIRED,
                    error=JobFailure("expired", "no worker started the job before its deadline"),
                )
            else:
                self._stop_on_worker(live, "timeout")
                self._end(live, JobState.FAILED, error=JobFailure("timeout", "the job ran past its deadline"))
        self._probe_quarantined()
        self._retire_models()
        self._events.sweep(now, self._settings.event_retention_seconds)
        for timers in (self._deadlines, self._leases):
            if len(timers) > 2 * len(self._live) + COMPACT_SLACK:
                timers.compact(self._live.__contains__)
