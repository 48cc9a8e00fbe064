"""The jobs table of one region store: rows to and from `Job`, with payloads and results sealed at rest."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import Connection, Row, and_, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman import protocol
from ferryman.jobs import usage_outbox
from ferryman.jobs.models import Job, JobFailure, JobPage, JobState, Timings
from ferryman.jobs.usage_outbox import UsageOutbox
from ferryman.privacy import PayloadCipher
from ferryman.store import BlobStore, StoreWriter, tables
from ferryman.types import JobId, OrgId, Priority, Region, Task, new_id

log = structlog.get_logger(__name__)

t = tables.jobs

_INSERT_JOB = insert(t)
_FINISH_COLUMNS = (
    "state",
    "finished_at",
    "usage",
    "error_code",
    "error_message",
    "error_detail",
    "wait_ms",
    "worker_rtt_ms",
    "work_ms",
    "attempts",
    "fence",
    "worker_id",
    "dispatched_at",
    "started_at",
    "crashed_workers",
    "result",
)
# built once: a statement object per call would be re-keyed for SQLAlchemy's cache on every job
_FINISH_JOB = (
    update(t).where(t.c.id == bindparam("job_id")).values({c: bindparam(c) for c in _FINISH_COLUMNS})
)

_DISPATCH_JOB = (
    update(t)
    .where(t.c.id == bindparam("job_id"))
    .values(
        state=JobState.DISPATCHED.value,
        fence=bindparam("fence"),
        attempts=bindparam("attempts"),
        worker_id=bindparam("worker_id"),
        dispatched_at=bindparam("dispatched_at"),
    )
)

_BLOB_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$")
_SUMMARY_COLUMNS = [c for c in t.c if c.name not in ("payload", "result")]


class DuplicateIdempotencyKey(Exception):
    """Another job of the org already holds this idempotency key."""


class UnreadableValue(Exception):
    """A stored value that cannot be handed out: not JSON, or nested past the worker protocol's limits (rows
    written before those limits were enforced)."""


def _load_stored(text: str | bytes) -> Any:
    """JSON from the store, held to the limits a worker frame is held to, so rendering it cannot fail."""
    try:
        value = json.loads(text)
        protocol.check_shape(value)
    except (ValueError, RecursionError) as exc:  # ProtocolError is a ValueError
        raise UnreadableValue(
            str(exc) if not isinstance(exc, RecursionError) else "nested too deep"
        ) from None
    return value


async def await_write(written: asyncio.Future[Any]) -> Any:
    return await written


def _usage(stored: str | None) -> dict[str, Any]:
    if not stored:
        return {}
    try:
        value = _load_stored(stored)
    except UnreadableValue:
        return {}
    return value if isinstance(value, dict) else {}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# what a failed job's row says in clear: its code and one of these; the message itself is sealed (error_detail),
# because backends quote their input in error messages
_CLEAR_MESSAGES = {
    "worker_error": "the backend failed the job",
    "poison": "the job crashed several workers",
    "max_attempts": "the job ran out of attempts",
    "timeout": "the job ran past its deadline",
    "expired": "no worker started the job before its deadline",
    "cancelled": "cancelled by the client",
    "invalid_output": "the worker's output broke the protocol's limits",
    "outcome_unstorable": "the store refused the job's outcome",
    "storage_unavailable": "the store did not take the job",
}


def clear_message(code: str) -> str:
    """The generic message stored in clear beside a failure's code."""
    return _CLEAR_MESSAGES.get(code, "the job failed")


def storable_text(value: str | None) -> str | None:
    """Text a worker or backend wrote, made storable in any store: PostgreSQL's text columns take neither NUL
    nor a lone surrogate (asyncpg refuses the whole statement, and the job's outcome with it), so both are
    written as visible escapes."""
    if value is None:
        return None
    return value.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


class JobRepository:
    def __init__(
        self,
        *,
        region: Region,
        engine: AsyncEngine,
        writer: StoreWriter,
        cipher: PayloadCipher,
        blobs: BlobStore,
    ) -> None:
        self.region = region
        self._blobs = blobs
        self._engine = engine
        self._writer = writer
        self._cipher = cipher
        # the usage events `finish` writes with each outcome, for their consumers (billing)
        self.usage = UsageOutbox(engine=engine, writer=writer)

    def _row_to_job(
        self, row: Row[Any], result: dict[str, Any] | None = None, error_detail: str | None = None
    ) -> Job:
        m = row._mapping
        message = error_detail if error_detail is not None else m["error_message"] or ""
        error = JobFailure(m["error_code"], message) if m["error_code"] else None
        return Job(
            id=JobId(m["id"]),
            org_id=OrgId(m["org_id"]),
            region=self.region,
            task=Task(m["task"]),
            model=m["model"],
            priority=Priority(m["priority"]),
            state=JobState(m["state"]),
            created_at=m["created_at"],
            deadline_at=m["deadline_at"],
            attempts=m["attempts"],
            fence=m["fence"],
            worker_id=m["worker_id"],
            idempotency_key=m["idempotency_key"],
            request_digest=m["request_digest"],
            webhook_url=m["webhook_url"],
            result=result,
            usage=_usage(m["usage"]),
            error=error,
            crashed_workers=tuple(json.loads(m["crashed_workers"] or "[]")),
            dispatched_at=m["dispatched_at"],
            started_at=m["started_at"],
            finished_at=m["finished_at"],
            timings=Timings(m["wait_ms"], m["worker_rtt_ms"], m["work_ms"]),
        )

    async def _result(self, row: Row[Any]) -> dict[str, Any] | None:
        sealed = row._mapping["result"]
        if sealed is None:
            return None
        plain = await self._cipher.decrypt(row._mapping["org_id"], sealed, aad=f"{row._mapping['id']}:result")
        value = _load_stored(plain)
        if not isinstance(value, dict):
            raise UnreadableValue("the result is not a JSON object")
        return value

    async def _error_detail(self, row: Row[Any]) -> str | None:
        """A failure's message, unsealed for its owner; None for rows failed before messages were sealed
        (their message is the one in clear)."""
        sealed = row._mapping["error_detail"]
        if sealed is None:
            return None
        plain = await self._cipher.decrypt(row._mapping["org_id"], sealed, aad=f"{row._mapping['id']}:error")
        return plain.decode("utf-8", "replace")

    async def _with_result(self, row: Row[Any]) -> Job:
        """The job of a row with its result and error unsealed; a result that cannot be handed out fails the
        job as it is read (`invalid_output`), so the job stays readable instead of failing every read."""
        detail = await self._error_detail(row)
        try:
            return self._row_to_job(row, await self._result(row), detail)
        except UnreadableValue as exc:
            log.warning("job.stored_result_unreadable", job_id=row._mapping["id"], reason=str(exc))
            return dataclasses.replace(
                self._row_to_job(row, None, detail),
                state=JobState.FAILED,
                error=JobFailure("invalid_output", f"the stored result cannot be returned: {exc}"),
            )

    async def insert(self, job: Job, payload: dict[str, Any]) -> None:
        """Durably store a new queued job; raises DuplicateIdempotencyKey if the key is taken."""
        try:
            await await_write(await self.submit_insert(job, payload))
        except IntegrityError as exc:
            raise DuplicateIdempotencyKey(job.idempotency_key or "") from exc

    async def submit_insert(self, job: Job, payload: dict[str, Any]) -> asyncio.Future[Any]:
        """Queue the insert of a new job and return its pending commit. Writes queued after this one (its
        dispatch, its result) commit after it: the writer keeps their order."""
        sealed = await self._cipher.encrypt(job.org_id, _dumps(payload).encode(), aad=f"{job.id}:payload")
        values = dict(
            id=job.id,
            org_id=job.org_id,
            task=job.task.value,
            model=job.model,
            priority=job.priority.value,
            state=job.state.value,
            attempts=0,
            fence=0,
            idempotency_key=job.idempotency_key,
            request_digest=job.request_digest,
            webhook_url=job.webhook_url,
            payload=sealed,
            crashed_workers="[]",
            created_at=job.created_at,
            deadline_at=job.deadline_at,
        )

        def write(conn: Connection) -> None:
            conn.execute(_INSERT_JOB, values)

        return self._writer.submit(write)

    async def get(self, org_id: OrgId, job_id: JobId) -> Job | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(t).where(and_(t.c.id == job_id, t.c.org_id == org_id)))).first()
        if row is None:
            return None
        return await self._with_result(row)

    async def find_by_idempotency_key(self, org_id: OrgId, key: str) -> Job | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(t).where(and_(t.c.org_id == org_id, t.c.idempotency_key == key)))
            ).first()
        if row is None:
            return None
        return await self._with_result(row)

    async def find_page(
        self,
        org_id: OrgId,
        *,
        cursor: str | None,
        limit: int,
        state: JobState | None = None,
        task: Task | None = None,
        model: str | None = None,
    ) -> JobPage:
        """Newest first; `cursor` is the id of the last job of the previous page."""
        query = select(*_SUMMARY_COLUMNS).where(t.c.org_id == org_id)
        if cursor:
            query = query.where(t.c.id < cursor)
        if state:
            query = query.where(t.c.state == state.value)
        if task:
            query = query.where(t.c.task == task.value)
        if model:
            query = query.where(t.c.model == model)
        query = query.order_by(t.c.id.desc()).limit(limit + 1)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        found = [self._row_to_job(r, None, await self._error_detail(r)) for r in rows[:limit]]
        return JobPage(found, found[-1].id if len(rows) > limit else None)

    async def find_unfinished(self) -> list[tuple[Job, dict[str, Any]]]:
        """Every job not yet in a terminal state, oldest first, with its payload: what a restart re-queues."""
        live = [s.value for s in JobState if not s.is_terminal]
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(t).where(t.c.state.in_(live)).order_by(t.c.id))).all()
        found = []
        for row in rows:
            plain = await self._cipher.decrypt(row.org_id, row.payload, aad=f"{row.id}:payload")
            found.append((self._row_to_job(row), json.loads(plain)))
        return found

    def update(self, job_id: JobId, **values: Any) -> Any:
        """Queue a write of some columns; returns the writer's future (commit pending)."""
        if "crashed_workers" in values:
            values["crashed_workers"] = _dumps(list(values["crashed_workers"]))

        def write(conn: Connection) -> None:
            conn.execute(update(t).where(t.c.id == job_id).values(**values))

        return self._writer.submit(write)

    def record_dispatch(
        self, job_id: JobId, *, fence: int, attempts: int, worker_id: str, dispatched_at: float | None
    ) -> asyncio.Future[Any]:
        params = dict(
            job_id=job_id,
            fence=fence,
            attempts=attempts,
            worker_id=storable_text(worker_id),
            dispatched_at=dispatched_at,
        )

        def write(conn: Connection) -> None:
            conn.execute(_DISPATCH_JOB, params)

        return self._writer.submit(write)

    async def finish(self, job: Job, *, result: dict[str, Any] | None) -> bool:
        """Durably record a terminal state with its sealed result and its usage event (one transaction); the
        caller acknowledges only after this. False when the store holds no such job: its insert (queued before,
        so committed before) failed."""
        sealed = detail = None
        if result is not None:
            sealed = await self._cipher.encrypt(job.org_id, _dumps(result).encode(), aad=f"{job.id}:result")
        if job.error is not None:  # sealed like a payload: backends quote their input in error messages
            plain = job.error.message.encode("utf-8", "backslashreplace")
            detail = await self._cipher.encrypt(job.org_id, plain, aad=f"{job.id}:error")
        params = dict(
            job_id=job.id,
            state=job.state.value,
            finished_at=job.finished_at,
            usage=_dumps(job.usage) if job.usage else None,
            error_code=storable_text(job.error.code) if job.error else None,
            error_message=clear_message(job.error.code) if job.error else None,
            error_detail=detail,
            wait_ms=job.timings.wait_ms,
            worker_rtt_ms=job.timings.worker_rtt_ms,
            work_ms=job.timings.work_ms,
            attempts=job.attempts,
            fence=job.fence,
            worker_id=storable_text(job.worker_id),
            dispatched_at=job.dispatched_at,
            started_at=job.started_at,
            crashed_workers=_dumps(list(job.crashed_workers)),
            result=sealed,
        )

        def write(conn: Connection) -> bool:
            if not conn.execute(_FINISH_JOB, params).rowcount:
                return False
            usage_outbox.record(conn, job)  # in the same transaction: the outcome never commits without it
            return True

        return await self._writer.write(write)

    async def store_blob(
        self, org_id: OrgId, job_id: JobId, name: str, content_type: str, data: bytes
    ) -> None:
        """Seal a job's media output into the region blob directory and index it; replaces one of the same name."""
        if not _BLOB_NAME.match(name):
            raise ValueError(f"unsafe blob name {name!r}")
        sealed = await self._cipher.encrypt(org_id, data, aad=f"{job_id}:blob:{name}")
        await self._blobs.put(org_id, f"{job_id}.{name}", sealed)
        b = tables.blobs

        def write(conn: Connection) -> None:
            conn.execute(delete(b).where(and_(b.c.job_id == job_id, b.c.name == name)))
            conn.execute(
                insert(b).values(
                    id=new_id("blob"),
                    org_id=org_id,
                    job_id=job_id,
                    name=name,
                    content_type=content_type,
                    size_bytes=len(data),
                    created_at=time.time(),
                )
            )

        await self._writer.write(write)

    async def read_blob(self, org_id: OrgId, job_id: JobId, name: str) -> tuple[str, bytes] | None:
        """(content type, bytes) of a job's media output, or None; another org's blob is None too."""
        b = tables.blobs
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(b.c.content_type).where(
                        and_(b.c.org_id == org_id, b.c.job_id == job_id, b.c.name == name)
                    )
                )
            ).first()
        if row is None:
            return None
        sealed = await self._blobs.get(org_id, f"{job_id}.{name}")
        if sealed is None:
            return None
        return row.content_type, await self._cipher.decrypt(org_id, sealed, aad=f"{job_id}:blob:{name}")

    async def upsert_models(self, offers: Sequence[tuple[str, list[str]]], at: float) -> None:
        m = tables.models

        def write(conn: Connection) -> None:
            for name, tasks in offers:
                conn.execute(delete(m).where(m.c.name == name))
                conn.execute(insert(m).values(name=name, tasks=_dumps(tasks), last_seen_at=at))

        await self._writer.write(write)

    async def start_epoch(self, at: float) -> int:
        """Record a queue node start; its number prefixes every fence the node hands out (see ADR 0002)."""

        def write(conn: Connection) -> int:
            result = conn.execute(insert(tables.node_starts).values(started_at=at))
            epoch: int = result.inserted_primary_key[0]  # type: ignore[index]
            return epoch

        return await self._writer.write(write)

    async def find_models(self) -> list[tuple[str, list[str], float]]:
        """Every model in the catalog: its name, tasks and when a worker last served it."""
        m = tables.models
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(m.c.name, m.c.tasks, m.c.last_seen_at))).all()
        return [(r.name, json.loads(r.tasks), r.last_seen_at) for r in rows]

    async def remove_models(self, names: Sequence[str]) -> None:
        """Take models out of the catalog (no worker served them for the retention time)."""
        m = tables.models

        def write(conn: Connection) -> None:
            conn.execute(delete(m).where(m.c.name.in_(list(names))))

        await self._writer.write(write)
