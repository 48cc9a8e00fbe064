"""The job use cases every surface shares: submit, look up, list, cancel, wait, follow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from ferryman.clock import Clock
from ferryman.errors import Conflict, InvalidRequest, NotFound, StorageUnavailable
from ferryman.jobs.admission import Admission, Candidate, replay, standard_checks
from ferryman.jobs.events import JobEvents
from ferryman.jobs.models import (
    Job,
    JobEvent,
    JobFailure,
    JobPage,
    JobSpec,
    JobState,
    ModelInfo,
    QueueClient,
    QueueInfo,
)
from ferryman.jobs.repository import DuplicateIdempotencyKey, JobRepository
from ferryman.types import JobId, OrgId, Region, Task, new_id

log = structlog.get_logger(__name__)

# the failure of a sync job whose insert the store refused: its waiter is answered 503, not with a job
NOT_STORED = StorageUnavailable.code


@dataclass(frozen=True, slots=True)
class JobSettings:
    default_deadline_seconds: Mapping[str, float]
    max_wait_seconds: float
    allow_private_webhooks: bool
    allow_private_input_urls: bool = False


def region_of(job_id: str) -> Region | None:
    """Job ids carry their region (`job_us_…`), so a lookup goes straight to the right store."""
    parts = job_id.split("_", 2)
    if len(parts) != 3 or parts[0] != "job":
        return None
    try:
        return Region(parts[1])
    except ValueError:
        return None


class JobService:
    """Creates jobs and answers for them; the queue node moves them through their lifecycle."""

    def __init__(
        self,
        *,
        repos: Mapping[Region, JobRepository],
        nodes: Mapping[Region, QueueClient],
        events: JobEvents,
        clock: Clock,
        settings: JobSettings,
        admission: Admission | None = None,
    ) -> None:
        """`admission` is the ordered list of checks a job passes (by default today's standard checks); the
        container also hands it every finished job, so that what a check holds is released at the job's end."""
        self._repos, self._nodes, self._events = repos, nodes, events
        self._clock, self._settings = clock, settings
        self._admission = admission or Admission(
            standard_checks(
                nodes=nodes,
                repos=repos,
                allow_private_webhooks=settings.allow_private_webhooks,
                allow_private_input_urls=settings.allow_private_input_urls,
            )
        )

    def model_info(self, region: Region, model: str) -> ModelInfo | None:
        return self._nodes[region].model_info(model)

    async def submit(self, spec: JobSpec, *, acknowledge: bool = True) -> tuple[Job, bool]:
        """Admit, store and queue a job; returns (job, created). Idempotent per (org, Idempotency-Key).

        The admission checks decide first (`jobs.admission`: region, model, task, replay, webhook, input URLs,
        backlog); the first to refuse raises its error. What a check holds for the job is released when the job
        ends, or at once if it is not queued after all.
        With `acknowledge` (the caller answers before the job ends) the job is committed before this returns.
        Without it (a sync request, answered only with the outcome) the job is queued while its insert commits,
        and its outcome's write commits after the insert: either way nothing is acknowledged unwritten.
        """
        job_id = JobId(new_id(f"job_{spec.region.value}"))
        seen = await self._admission.admit(Candidate(job_id, spec))
        if seen is not None:
            return seen, False
        try:
            job, created = await self._store_and_queue(job_id, spec, acknowledge=acknowledge)
        except BaseException:
            self._admission.release(job_id)
            raise
        if not created:
            self._admission.release(job_id)
        return job, created

    async def _store_and_queue(self, job_id: JobId, spec: JobSpec, *, acknowledge: bool) -> tuple[Job, bool]:
        node, repo = self._nodes[spec.region], self._repos[spec.region]
        now = self._clock.now()
        deadline = spec.deadline_seconds or self._settings.default_deadline_seconds[spec.priority.value]
        job = Job(
            id=job_id,
            org_id=spec.org_id,
            region=spec.region,
            task=spec.task,
            model=spec.model,
            priority=spec.priority,
            state=JobState.QUEUED,
            created_at=now,
            deadline_at=now + deadline,
            idempotency_key=spec.idempotency_key,
            request_digest=spec.request_digest,
            webhook_url=spec.webhook_url,
        )
        if not acknowledge and not spec.idempotency_key:
            written = await repo.submit_insert(job, spec.payload)
            node.enqueue(job, spec.payload, spec.weight)
            written.add_done_callback(lambda f: self._check_insert(f, job))
            return job, True
        try:
            await repo.insert(job, spec.payload)
        except DuplicateIdempotencyKey:
            if (seen := await replay(repo, spec)) is not None:
                return seen, False
            raise
        node.enqueue(job, spec.payload, spec.weight)
        return job, True

    def _check_insert(self, written: asyncio.Future[Any], job: Job) -> None:
        if not written.cancelled() and written.exception() is not None:
            log.error("job.insert_failed", job_id=job.id, error=type(written.exception()).__name__)
            failure = JobFailure(NOT_STORED, "the store did not take the job; nothing ran; submit it again")
            self._nodes[job.region].abandon(job.id, failure)

    def _repo_for(self, job_id: str) -> tuple[Region, JobRepository]:
        region = region_of(job_id)
        if region is None or region not in self._repos:
            raise NotFound(f"job {job_id!r} not found")
        return region, self._repos[region]

    async def get(self, org_id: OrgId, job_id: str) -> tuple[Job, QueueInfo | None]:
        """The job and, while it waits, where it stands. Another org's job is NotFound."""
        final = self._events.final(job_id)
        if final is not None and final.org_id == org_id:
            return final, None
        region, repo = self._repo_for(job_id)
        node = self._nodes[region]
        # a job the node holds is answered from memory: no store read on the path of every stream and poll
        job = node.live_job(JobId(job_id))
        if job is None or job.org_id != org_id:
            job = await repo.get(org_id, JobId(job_id))
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        info = node.queue_info(job.id) if job.state is JobState.QUEUED else None
        return job, info

    async def find_page(
        self,
        org_id: OrgId,
        region: Region,
        *,
        cursor: str | None,
        limit: int,
        state: JobState | None,
        task: Task | None,
        model: str | None,
    ) -> JobPage:
        if cursor is not None:
            cursor_region = region_of(cursor)
            if cursor_region is None:
                raise InvalidRequest("cursor is not a job id from a previous page")
            region = cursor_region
        page = await self._repos[region].find_page(
            org_id, cursor=cursor, limit=limit, state=state, task=task, model=model
        )
        node = self._nodes[region]
        return JobPage([node.live_job(j.id) or j for j in page.jobs], page.next_cursor)

    async def cancel(self, org_id: OrgId, job_id: str) -> Job:
        """Cancel a queued or running job (the worker is told to stop). Conflict if it already ended."""
        job, _ = await self.get(org_id, job_id)
        if job.state.is_terminal:
            raise Conflict(f"job {job_id} already ended as {job.state.value}; nothing to cancel")
        cancelled = await self._nodes[job.region].cancel(job.id)
        if cancelled is not None:
            return cancelled
        job, _ = await self.get(org_id, job_id)
        return job

    async def wait(self, org_id: OrgId, job_id: str, timeout_seconds: float) -> Job:
        """The job once it ended, or as it stands when the timeout passes. NotFound for another org's job."""
        timeout = min(max(0.0, timeout_seconds), self._settings.max_wait_seconds)
        if not self._events.has(job_id):
            # not live in this process (finished long ago, or another org's id): the store answers
            job, _ = await self.get(org_id, job_id)
            if job.state.is_terminal:
                return job
        final = await self._events.wait_final(job_id, timeout)
        if final is not None and final.org_id == org_id:
            if final.error is not None and final.error.code == NOT_STORED:
                raise StorageUnavailable(
                    f"the store is unavailable; job {job_id} was not recorded and did not run; submit it again",
                    details={"retry_after_seconds": 2},
                )
            return final
        job, _ = await self.get(org_id, job_id)
        if not job.state.is_terminal and self._nodes[job.region].outcome_unwritten(job.id):
            raise StorageUnavailable(
                f"job {job_id} has ended, but the store is unavailable to record its outcome; it is answered once "
                "recorded: ask again shortly",
                details={"retry_after_seconds": 2},
            )
        return job

    async def follow(self, org_id: OrgId, job_id: str, after: int = 0) -> AsyncIterator[JobEvent]:
        """The job's events after `after`; ends with `done`. Raises NotFound before the first event."""
        job, _ = await self.get(org_id, job_id)
        return self._follow(job, after)

    async def _follow(self, job: Job, after: int) -> AsyncIterator[JobEvent]:
        if job.state.is_terminal and not self._events.has(job.id):
            yield JobEvent(after + 1, "done", {"state": job.state.value})
            return
        async for event in self._events.follow(job.id, after):
            yield event

    def final(self, job_id: str) -> Job | None:
        return self._events.final(job_id)

    async def read_blob(self, org_id: OrgId, job_id: JobId, name: str) -> tuple[str, bytes] | None:
        region = region_of(job_id)
        if region is None or region not in self._repos:
            return None
        return await self._repos[region].read_blob(org_id, job_id, name)
