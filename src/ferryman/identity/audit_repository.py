"""The audit_events table: rows to and from `AuditEvent`. Only SQL here; `AuditLog` decides what is recorded."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, and_, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.identity.models import AuditAction, AuditEvent
from ferryman.store import StoreWriter, tables
from ferryman.types import OrgId, UserId

a = tables.audit_events


class AuditRepository:
    def __init__(self, *, engine: AsyncEngine, writer: StoreWriter) -> None:
        self._engine, self._writer = engine, writer

    async def insert(self, event: AuditEvent) -> None:
        """Append the event; durable when this returns."""

        def write(conn: Connection) -> None:
            conn.execute(
                insert(a).values(
                    id=event.id,
                    org_id=event.org_id,
                    actor_user_id=event.actor_user_id,
                    action=event.action.value,
                    target=event.target,
                    details=json.dumps(event.details, sort_keys=True),
                    ip=event.ip,
                    created_at=event.created_at,
                )
            )

        await self._writer.write(write)

    async def find_system(self, *, action_prefix: str, limit: int) -> list[AuditEvent]:
        """Newest first: events of no org whose action starts with `action_prefix`."""
        where = and_(a.c.org_id.is_(None), a.c.action.startswith(action_prefix, autoescape=True))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(a).where(where).order_by(a.c.id.desc()).limit(limit))).all()
        return [_event(r) for r in rows]

    async def find_page(self, org_id: OrgId, *, before: str | None, limit: int) -> list[AuditEvent]:
        """Newest first; `before` is the id of the last event of the previous page."""
        where = a.c.org_id == org_id if before is None else and_(a.c.org_id == org_id, a.c.id < before)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(a).where(where).order_by(a.c.id.desc()).limit(limit))).all()
        return [_event(r) for r in rows]


def _event(r: Any) -> AuditEvent:
    return AuditEvent(
        r.id,
        OrgId(r.org_id) if r.org_id else None,
        UserId(r.actor_user_id) if r.actor_user_id else None,
        AuditAction(r.action),
        r.target,
        json.loads(r.details),
        r.ip,
        r.created_at,
    )
