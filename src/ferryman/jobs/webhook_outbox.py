"""The webhook outbox of one region store: deliveries that wait for their receiver, sealed at rest.

A row is written when its job ends and marked `delivered` when its receiver answers 2xx, so a delivery outlives
any restart in between. A delivered row is kept a while (its `next_attempt_at` is then when it may be purged) so
that, after a crash, jobs that ended without a row can be told from jobs whose webhook went out
(`finished_without_delivery`). Rows are read and written only here; `WebhookSender` decides when.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.jobs.models import TERMINAL_STATES
from ferryman.privacy import PayloadCipher
from ferryman.store import StoreWriter, tables

t = tables.webhook_deliveries

PENDING, DELIVERED, ABANDONED = "pending", "delivered", "abandoned"
_TERMINAL = sorted(state.value for state in TERMINAL_STATES)


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    org_id: str
    job_id: str
    url: str
    body: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class FinishedJob:
    """A job that ended with a webhook URL: what its webhook says."""

    id: str
    org_id: str
    state: str
    task: str
    model: str
    webhook_url: str


class WebhookOutbox:
    def __init__(self, *, engine: AsyncEngine, writer: StoreWriter, cipher: PayloadCipher) -> None:
        self._engine, self._writer, self._cipher = engine, writer, cipher

    async def add(self, delivery: Delivery, *, now: float) -> bool:
        """Store a new delivery, due now; False if one with its id is already stored (the job ended once)."""
        sealed = await self._cipher.encrypt(delivery.org_id, delivery.body, aad=f"{delivery.id}:webhook")
        values = dict(
            id=delivery.id,
            org_id=delivery.org_id,
            job_id=delivery.job_id,
            url=delivery.url,
            body=sealed,
            state=PENDING,
            attempts=delivery.attempts,
            next_attempt_at=now,
            created_at=now,
        )

        def write(
            conn: Connection,
        ) -> bool:  # the region's one writer runs this: check-then-insert is race-free
            if conn.execute(select(t.c.id).where(t.c.id == delivery.id)).first() is not None:
                return False
            conn.execute(insert(t).values(values))
            return True

        added: bool = await self._writer.write(write)
        return added

    async def due(self, *, now: float, limit: int, exclude: set[str]) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, oldest first, without those already in flight."""
        query = (
            select(t.c.id, t.c.org_id, t.c.job_id, t.c.url, t.c.body, t.c.attempts)
            .where(t.c.state == PENDING, t.c.next_attempt_at <= now)
            .order_by(t.c.next_attempt_at)
            .limit(limit + len(exclude))
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        found = []
        for row in rows:
            if row.id in exclude:
                continue
            body = await self._cipher.decrypt(row.org_id, row.body, aad=f"{row.id}:webhook")
            found.append(Delivery(row.id, row.org_id, row.job_id, row.url, body, row.attempts))
        return found[:limit]

    async def next_due_at(self, *, exclude: set[str]) -> float | None:
        """When the earliest pending delivery not in flight is due (maybe already), or None if there is none."""
        query = select(t.c.next_attempt_at).where(t.c.state == PENDING)
        if exclude:
            query = query.where(t.c.id.not_in(exclude))
        async with self._engine.connect() as conn:
            value: float | None = (await conn.execute(query.order_by(t.c.next_attempt_at).limit(1))).scalar()
        return value

    async def delivered(self, delivery_id: str, *, keep_until: float) -> None:
        values = dict(state=DELIVERED, next_attempt_at=keep_until)
        await self._writer.write(
            lambda conn: conn.execute(update(t).where(t.c.id == delivery_id).values(values))
        )

    async def purge(self, *, now: float) -> None:
        """Delete delivered rows past their keeping time."""
        statement = delete(t).where(t.c.state == DELIVERED, t.c.next_attempt_at <= now)
        await self._writer.write(lambda conn: conn.execute(statement))

    async def finished_without_delivery(self, *, since: float, limit: int) -> list[FinishedJob]:
        """Jobs with a webhook URL that ended after `since` and have no row: a crash came between their outcome's
        commit and their delivery's. (Scans the jobs that ended since then; run once at start.)"""
        jobs = tables.jobs
        query = (
            select(jobs.c.id, jobs.c.org_id, jobs.c.state, jobs.c.task, jobs.c.model, jobs.c.webhook_url)
            .where(
                jobs.c.webhook_url.is_not(None),
                jobs.c.finished_at >= since,
                jobs.c.state.in_(_TERMINAL),
                ~exists().where(t.c.job_id == jobs.c.id),
            )
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [FinishedJob(*row) for row in rows]

    async def failed(self, delivery_id: str, *, attempts: int, error: str, retry_at: float | None) -> None:
        """Record a failed attempt: due again at `retry_at`, or abandoned for good when that is None."""
        values = dict(attempts=attempts, last_error=error[:64])
        if retry_at is None:
            values["state"] = ABANDONED
        else:
            values["next_attempt_at"] = retry_at
        await self._writer.write(
            lambda conn: conn.execute(update(t).where(t.c.id == delivery_id).values(values))
        )
