"""The audit log: security-relevant events (sign-in, tokens, roles, invitations, region changes) per org."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.clock import Clock
from ferryman.identity.audit_repository import AuditRepository
from ferryman.identity.models import AuditAction, AuditEvent
from ferryman.store import StoreWriter
from ferryman.types import OrgId, UserId, new_id

MAX_PAGE = 100


class AuditLog:
    def __init__(self, *, engine: AsyncEngine, writer: StoreWriter, clock: Clock) -> None:
        self._repo, self._clock = AuditRepository(engine=engine, writer=writer), clock
        self._engine = engine  # read by tests that look at the store as it is

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

        await self._repo.insert(event)
        return event

    async def find_system(self, *, action_prefix: str, limit: int) -> list[AuditEvent]:
        """Newest first: events of no org (the platform's own, e.g. the autoscaler's rents) whose action starts
        with `action_prefix`."""
        return await self._repo.find_system(action_prefix=action_prefix, limit=min(limit, MAX_PAGE))

    async def find_page(self, org_id: OrgId, *, before: str | None, limit: int) -> list[AuditEvent]:
        """Newest first; `before` is the id of the last event of the previous page."""
        return await self._repo.find_page(org_id, before=before, limit=min(limit, MAX_PAGE))
