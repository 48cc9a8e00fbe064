"""The webhook outbox of one region store: deliveries that wait for their receiver, sealed at rest.

A row is written when its job ends and removed when its receiver answers 2xx, so a delivery outlives any restart
in between. Rows are read and written only here; `WebhookSender` decides when.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.privacy import PayloadCipher
from ferryman.store import StoreWriter, tables

t = tables.webhook_deliveries

PENDING, ABANDONED = "pending", "abandoned"


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    org_id: str
    job_id: str
    url: str
    body: bytes
    attempts: int


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

    async def delivered(self, delivery_id: str) -> None:
        await self._writer.write(lambda conn: conn.execute(delete(t).where(t.c.id == delivery_id)))

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
