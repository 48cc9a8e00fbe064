"""Admission: the ordered list of checks a job passes before it is stored and queued.

Each check is a small object with one `admit` method. Rate limits, spend limits, concurrency and processing
restrictions come as more checks in the list, not as more `if`s in `JobService.submit`. A check that holds
something while the job lives (a concurrency slot, a spend reservation) also has `release`; `Admission` calls
it exactly once per admitted job: at the job's end, or at once when the job is not queued after all (a later
check refused it, its insert failed, or it was a replay of an earlier job).

Holds live in this process's memory: a job recovered from the store after a restart was admitted by an earlier
process and has nothing to release here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

import structlog

from ferryman import netguard
from ferryman.errors import Conflict, InvalidRequest, NotFound
from ferryman.jobs import webhooks
from ferryman.jobs.models import Job, JobSpec, QueueClient
from ferryman.jobs.repository import JobRepository
from ferryman.types import JobId, Region

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A job being admitted: its spec and the id it will have if it is admitted (holds are keyed by it)."""

    job_id: JobId
    spec: JobSpec


class AdmissionCheck(Protocol):
    """One rule a job must pass. Raise a `FerrymanError` to refuse the job (the client gets that error); return
    a `Job` to answer with that job instead of creating one (an idempotent replay); return None to pass."""

    async def admit(self, candidate: Candidate) -> Job | None: ...


@runtime_checkable
class HoldingCheck(AdmissionCheck, Protocol):
    """A check that holds something for an admitted job until it ends, and gives it back in `release`."""

    def release(self, job_id: JobId) -> None: ...


class Admission:
    """Runs the checks in order and keeps track of what each admitted job holds, so it is released once."""

    def __init__(self, checks: Sequence[AdmissionCheck]) -> None:
        self.checks = tuple(checks)
        # decided once: a runtime Protocol check on every submit would cost more than the checks themselves
        self._holds = tuple(isinstance(c, HoldingCheck) for c in self.checks)
        self._held: dict[JobId, tuple[HoldingCheck, ...]] = {}

    async def admit(self, candidate: Candidate) -> Job | None:
        """Pass the candidate through every check; the first refusal propagates (after releasing what earlier
        checks took). A replay returns the earlier job. None: admitted, and its holds last until `release`."""
        holding: list[HoldingCheck] = []
        try:
            for check, holds in zip(self.checks, self._holds, strict=True):
                seen = await check.admit(candidate)
                if holds:
                    holding.append(cast(HoldingCheck, check))
                if seen is not None:
                    _release_all(candidate.job_id, holding)
                    return seen
        except BaseException:
            _release_all(candidate.job_id, holding)
            raise
        if holding:
            self._held[candidate.job_id] = tuple(holding)
        return None

    def release(self, job_id: JobId) -> None:
        """The job ended, or will never be queued: give back what its checks hold. Later calls do nothing."""
        _release_all(job_id, self._held.pop(job_id, ()))

    def job_finished(self, job: Job, at_mono: float) -> None:
        """A completion observer: every job that reached its terminal state gives back its holds."""
        self.release(job.id)

    def holding(self) -> int:
        """How many admitted jobs still hold something (for tests and metrics)."""
        return len(self._held)


def _release_all(job_id: JobId, holding: Sequence[HoldingCheck]) -> None:
    """Release in reverse order of taking; one release that fails is logged and does not stop the others."""
    for check in reversed(holding):
        try:
            check.release(job_id)
        except Exception:
            log.exception("admission.release_failed", job_id=job_id, check=type(check).__name__)


class RegionServed:
    """The job's region has a queue node in this process."""

    def __init__(self, nodes: Mapping[Region, QueueClient]) -> None:
        self._nodes = nodes

    async def admit(self, candidate: Candidate) -> Job | None:
        if candidate.spec.region not in self._nodes:
            raise InvalidRequest(f"region {candidate.spec.region.value!r} is not served here")
        return None


class ModelServed:
    """The region knows the model (a worker served it, recently enough to stay in the catalog)."""

    def __init__(self, nodes: Mapping[Region, QueueClient]) -> None:
        self._nodes = nodes

    async def admit(self, candidate: Candidate) -> Job | None:
        spec = candidate.spec
        if self._nodes[spec.region].model_tasks(spec.model) is None:
            raise NotFound(
                f"model {spec.model!r} is not served in region {spec.region}; GET /v1/models lists models"
            )
        return None


class TaskServed:
    """The model serves the job's task (a chat model is not asked for an image)."""

    def __init__(self, nodes: Mapping[Region, QueueClient]) -> None:
        self._nodes = nodes

    async def admit(self, candidate: Candidate) -> Job | None:
        spec = candidate.spec
        tasks = self._nodes[spec.region].model_tasks(spec.model) or frozenset()
        if spec.task not in tasks:
            raise InvalidRequest(
                f"model {spec.model!r} does not serve task {spec.task.value!r}; it serves "
                f"{sorted(t.value for t in tasks)}"
            )
        return None


async def replay(repo: JobRepository, spec: JobSpec) -> Job | None:
    """The job stored earlier under the spec's Idempotency-Key, if any; Conflict if its body differed."""
    assert spec.idempotency_key is not None
    seen = await repo.find_by_idempotency_key(spec.org_id, spec.idempotency_key)
    if seen is not None and seen.request_digest != spec.request_digest:
        raise Conflict("Idempotency-Key was already used with a different request body; use a new key")
    return seen


class IdempotentReplay:
    """A repeated Idempotency-Key answers with the job it created (Conflict if the body changed)."""

    def __init__(self, repos: Mapping[Region, JobRepository]) -> None:
        self._repos = repos

    async def admit(self, candidate: Candidate) -> Job | None:
        spec = candidate.spec
        if not spec.idempotency_key:
            return None
        return await replay(self._repos[spec.region], spec)


class WebhookAllowed:
    """A webhook URL is https (or a private address only where the operator allowed it)."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private

    async def admit(self, candidate: Candidate) -> Job | None:
        if candidate.spec.webhook_url:
            await webhooks.check_url(candidate.spec.webhook_url, allow_private=self._allow_private)
        return None


class InputUrlsAllowed:
    """Input URLs in the payload do not point into the operator's private network (unless allowed)."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private

    async def admit(self, candidate: Candidate) -> Job | None:
        await netguard.check_input_urls(candidate.spec.payload, allow_private=self._allow_private)
        return None


class BacklogRoom:
    """The model's queue for the job's priority class is under its cap (BacklogFull otherwise)."""

    def __init__(self, nodes: Mapping[Region, QueueClient]) -> None:
        self._nodes = nodes

    async def admit(self, candidate: Candidate) -> Job | None:
        spec = candidate.spec
        self._nodes[spec.region].admit(model=spec.model, priority=spec.priority)
        return None


def standard_checks(
    *,
    nodes: Mapping[Region, QueueClient],
    repos: Mapping[Region, JobRepository],
    allow_private_webhooks: bool,
    allow_private_input_urls: bool,
) -> list[AdmissionCheck]:
    """Today's checks in their order: cheap lookups first, then the store (replay), then the network (URLs),
    then the backlog last, so a refused job never counts against a queue."""
    return [
        RegionServed(nodes),
        ModelServed(nodes),
        TaskServed(nodes),
        IdempotentReplay(repos),
        WebhookAllowed(allow_private=allow_private_webhooks),
        InputUrlsAllowed(allow_private=allow_private_input_urls),
        BacklogRoom(nodes),
    ]
