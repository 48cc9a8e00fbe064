"""The audit log: security-relevant events (sign-in, tokens, roles, invitations, region changes) per org."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, and_, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.clock import Clock
from ferryman.identity.models import AuditAction, AuditEvent
from ferryman.store import StoreWriter, tables
from ferryman.types import OrgId, UserId, new_id

MAX_PAGE = 100


class AuditLog:
    def __init__(self, *, engine: AsyncEngine, writer: StoreWriter, clock: Clock) -> None:
        self._engine, self._writer, self._clock = engine, writer, clock

    async def record(
        self,
        action: AuditAction,
        *,
        org_id: OrgId | None,
        actor: UserId | None,
        target: str | None = None,
        details: Mapping[str, str] | None = None,
        ip: str | None = None,
    ) -> AuditEvent:
        """Append one event; it is durable when this returns. Never put secrets or emails in `details`."""
        event = AuditEvent(
            new_id("aud"), org_id, actor, action, target, dict(details or {}), ip, self._clock.now()
        )

        def write(conn: Connection) -> None:
            conn.execute(
                insert(tables.audit_events).values(
                    id=event.id,
                    org_id=org_id,
                    actor_user_id=actor,
                    action=action.value,
                    target=target,
                    details=json.dumps(event.details, sort_keys=True),
                    ip=ip,
                    created_at=event.created_at,
                )
            )

        await self._writer.write(write)
        return event

    async def find_system(self, *, action_prefix: str, limit: int) -> list[AuditEvent]:
        """Newest first: events of no org (the platform's own, e.g. the autoscaler's rents) whose action starts
        with `action_prefix`."""
        a = tables.audit_events
        where = and_(a.c.org_id.is_(None), a.c.action.startswith(action_prefix, autoescape=True))
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(select(a).where(where).order_by(a.c.id.desc()).limit(min(limit, MAX_PAGE)))
            ).all()
        return [_event(r) for r in rows]

    async def find_page(self, org_id: OrgId, *, before: str | None, limit: int) -> list[AuditEvent]:
        """Newest first; `before` is the id of the last event of the previous page."""
        a = tables.audit_events
        where = a.c.org_id == org_id if before is None else and_(a.c.org_id == org_id, a.c.id < before)
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(select(a).where(where).order_by(a.c.id.desc()).limit(min(limit, MAX_PAGE)))
            ).all()
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
