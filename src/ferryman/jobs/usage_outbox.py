"""The usage outbox of one region store: one event per job outcome, read and acknowledged in order.

`record` runs inside the write that commits a job's terminal state (`JobRepository.finish`), so the outcome and
its usage commit together or not at all (docs/adr/0005-usage-outbox.md). The `(job_id, fence)` key makes a
repeated write of the same outcome (a retried commit whose first try did land) add nothing.

A consumer names itself; its position (`acked_seq`) is stored next to the events, so it survives restarts.
`read` hands out the events after that position in `seq` order; `ack` moves the position forward. For a consumer
whose effect lives in this region store, `apply` does both in one transaction: each event takes effect exactly
once. A consumer elsewhere (a payment provider) acks after its effect and deduplicates by the event `id` in case
it crashed between the two. `seq` order is commit order because every write of a region store goes through its
single `StoreWriter`, one transaction at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.jobs.models import Job
from ferryman.jobs.usage import Units, UsageEvent, units_of
from ferryman.store import StoreWriter, tables
from ferryman.types import new_id

e = tables.usage_events
c = tables.usage_cursors

T = TypeVar("T")
MAX_READ = 1000


def record(conn: Connection, job: Job) -> bool:
    """Insert `job`'s usage event in the caller's transaction; False if this outcome already has one."""
    seen = conn.execute(select(e.c.seq).where(e.c.job_id == job.id, e.c.fence == job.fence)).first()
    if seen is not None:
        return False
    units = units_of(job)
    conn.execute(
        insert(e).values(
            id=new_id("use"),
            org_id=job.org_id,
            job_id=job.id,
            fence=job.fence,
            model=job.model,
            task=job.task.value,
            state=job.state.value,
            prompt_tokens=units.prompt_tokens,
            completion_tokens=units.completion_tokens,
            images=units.images,
            audio_seconds=units.audio_seconds,
            video_seconds=units.video_seconds,
            gpu_seconds=units.gpu_seconds,
            created_at=job.finished_at if job.finished_at is not None else time.time(),
        )
    )
    return True


def _event(row: Row[Any]) -> UsageEvent:
    m = row._mapping
    return UsageEvent(
        seq=m["seq"],
        id=m["id"],
        org_id=m["org_id"],
        job_id=m["job_id"],
        fence=m["fence"],
        model=m["model"],
        task=m["task"],
        state=m["state"],
        units=Units(
            prompt_tokens=m["prompt_tokens"],
            completion_tokens=m["completion_tokens"],
            images=m["images"],
            audio_seconds=m["audio_seconds"],
            video_seconds=m["video_seconds"],
            gpu_seconds=m["gpu_seconds"],
        ),
        created_at=m["created_at"],
    )


def _position(conn: Connection, consumer: str) -> int:
    found = conn.execute(select(c.c.acked_seq).where(c.c.consumer == consumer)).scalar()
    return int(found) if found is not None else 0


def _after(conn: Connection, position: int, limit: int) -> list[UsageEvent]:
    rows = conn.execute(select(e).where(e.c.seq > position).order_by(e.c.seq).limit(limit)).all()
    return [_event(r) for r in rows]


def _move(conn: Connection, consumer: str, seq: int) -> int:
    """Move `consumer` to `seq` if that is forward; returns its position afterwards."""
    current = conn.execute(select(c.c.acked_seq).where(c.c.consumer == consumer)).scalar()
    if current is None:
        conn.execute(insert(c).values(consumer=consumer, acked_seq=seq, updated_at=time.time()))
        return seq
    if seq > current:
        conn.execute(update(c).where(c.c.consumer == consumer).values(acked_seq=seq, updated_at=time.time()))
        return seq
    return int(current)


class UsageOutbox:
    """Reads and acknowledges one region store's usage events for named consumers."""

    def __init__(self, *, engine: AsyncEngine, writer: StoreWriter) -> None:
        self._engine, self._writer = engine, writer

    async def position(self, consumer: str) -> int:
        """The `seq` of the last event `consumer` acknowledged (0 before its first)."""
        async with self._engine.connect() as conn:
            return await conn.run_sync(_position, consumer)

    async def read(self, consumer: str, *, limit: int = 100) -> list[UsageEvent]:
        """The next events `consumer` has not acknowledged, oldest first (at most `limit`, capped at 1,000).
        Reading does not move the position: until `ack`, the same events come again (after a restart too)."""
        limit = max(1, min(limit, MAX_READ))
        async with self._engine.connect() as conn:
            return await conn.run_sync(lambda sync: _after(sync, _position(sync, consumer), limit))

    async def ack(self, consumer: str, through_seq: int) -> int:
        """Mark every event up to `through_seq` done for `consumer`; an older position than it has is ignored,
        so acknowledging twice is harmless. Returns the position now stored."""
        return await self._writer.write(lambda conn: _move(conn, consumer, through_seq))

    async def apply(
        self,
        consumer: str,
        effect: Callable[[Connection, Sequence[UsageEvent]], T],
        *,
        limit: int = 100,
    ) -> tuple[list[UsageEvent], T | None]:
        """Exactly once, for an effect in this region store: read the next events, run `effect` on them and
        move the position past them, all in one transaction. A crash before the commit leaves neither."""
        limit = max(1, min(limit, MAX_READ))

        def write(conn: Connection) -> tuple[list[UsageEvent], T | None]:
            events = _after(conn, _position(conn, consumer), limit)
            if not events:
                return events, None
            done = effect(conn, events)
            _move(conn, consumer, events[-1].seq)
            return events, done

        return await self._writer.write(write)

    async def count_for(self, job_id: str) -> int:
        """How many usage events a job has (one per outcome; for tests and operators)."""
        async with self._engine.connect() as conn:
            found = await conn.execute(select(func.count()).select_from(e).where(e.c.job_id == job_id))
            return int(found.scalar_one())
