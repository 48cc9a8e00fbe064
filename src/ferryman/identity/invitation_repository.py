"""The invitations table (and the membership an accepted invitation adds): rows to and from `Invitation`.

Only SQL here; `InvitationService` holds the rules, including `check` passed into `use`, which runs inside the
writer's transaction so that a single-use link admits exactly one person.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.identity.models import Invitation, Role
from ferryman.store import StoreWriter, tables
from ferryman.types import OrgId, UserId

i = tables.invitations
m = tables.members


def _invitation(row: Any) -> Invitation:
    return Invitation(
        row.id,
        OrgId(row.org_id),
        row.email,
        Role(row.role),
        row.max_uses,
        row.uses,
        UserId(row.created_by),
        row.created_at,
        row.expires_at,
        row.revoked_at,
    )


class InvitationRepository:
    def __init__(self, *, engine: AsyncEngine, writer: StoreWriter) -> None:
        self._engine, self._writer = engine, writer

    async def insert(self, invitation: Invitation, *, token_hash: str) -> None:
        await self._writer.write(
            lambda conn: conn.execute(
                insert(i).values(
                    id=invitation.id,
                    org_id=invitation.org_id,
                    token_hash=token_hash,
                    email=invitation.email,
                    role=invitation.role.value,
                    max_uses=invitation.max_uses,
                    uses=invitation.uses,
                    created_by=invitation.created_by,
                    created_at=invitation.created_at,
                    expires_at=invitation.expires_at,
                )
            )
        )

    async def find_for_org(self, org_id: OrgId) -> list[Invitation]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(i).where(i.c.org_id == org_id).order_by(i.c.id))).all()
        return [_invitation(r) for r in rows]

    async def find_by_hash(self, token_hash: str) -> Invitation | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(i).where(i.c.token_hash == token_hash))).first()
        return _invitation(row) if row is not None else None

    async def revoke(self, invitation_id: str, *, now: float) -> None:
        """Idempotent: an invitation already revoked keeps its first `revoked_at`."""
        await self._writer.write(
            lambda conn: conn.execute(
                update(i)
                .where(and_(i.c.id == invitation_id, i.c.revoked_at.is_(None)))
                .values(revoked_at=now)
            )
        )

    async def use(
        self, invitation_id: str, user_id: UserId, *, now: float, check: Callable[[Invitation], None]
    ) -> bool:
        """In one transaction: `check` the invitation as it stands now (it raises to refuse), then count a use
        and add the user as a member with its role. False, and nothing written, if the user already is one."""

        def write(conn: Connection) -> bool:
            fresh = _invitation(conn.execute(select(i).where(i.c.id == invitation_id)).one())
            check(fresh)
            member = conn.execute(
                select(m.c.role).where(and_(m.c.org_id == fresh.org_id, m.c.user_id == user_id))
            ).first()
            if member is not None:
                return False
            conn.execute(update(i).where(i.c.id == invitation_id).values(uses=i.c.uses + 1))
            conn.execute(
                insert(m).values(org_id=fresh.org_id, user_id=user_id, role=fresh.role.value, created_at=now)
            )
            return True

        return await self._writer.write(write)
