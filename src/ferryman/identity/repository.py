"""Users, orgs, members and token hashes in the global store."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.identity.models import Org, Principal, Scope, WorkerPrincipal
from ferryman.store import StoreWriter, tables
from ferryman.types import OrgId, Region, TokenId, UserId


class IdentityRepository:
    def __init__(self, *, engine: AsyncEngine, writer: StoreWriter) -> None:
        self._engine = engine
        self._writer = writer

    async def _insert(self, table: Any, **values: Any) -> None:
        def write(conn: Connection) -> None:
            conn.execute(insert(table).values(**values))

        await self._writer.write(write)

    async def insert_user(self, *, user_id: UserId, name: str, email: str | None, admin: bool, at: float) -> None:
        await self._insert(tables.users, id=user_id, name=name, email=email, is_platform_admin=admin, created_at=at)

    async def insert_org(self, org: Org, *, at: float) -> None:
        await self._insert(tables.orgs, id=org.id, name=org.name, region=org.region.value, weight=org.weight,
                           webhook_secret=org.webhook_secret, created_at=at)

    async def insert_member(self, *, org_id: OrgId, user_id: UserId, role: str, at: float) -> None:
        await self._insert(tables.members, org_id=org_id, user_id=user_id, role=role, created_at=at)

    async def insert_api_token(
        self, *, token_id: TokenId, org_id: OrgId, user_id: UserId, name: str, token_hash: str, last4: str,
        scopes: list[str], at: float, expires_at: float,
    ) -> None:
        await self._insert(tables.api_tokens, id=token_id, org_id=org_id, user_id=user_id, name=name,
                           token_hash=token_hash, last4=last4, scopes=json.dumps(scopes), created_at=at,
                           expires_at=expires_at)

    async def insert_worker_token(self, *, token_id: TokenId, region: Region, name: str, token_hash: str,
                                  at: float) -> None:
        await self._insert(tables.worker_tokens, id=token_id, region=region.value, name=name,
                           token_hash=token_hash, created_at=at)

    async def get_org(self, org_id: OrgId) -> Org | None:
        o = tables.orgs
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(o).where(o.c.id == org_id))).first()
        if row is None:
            return None
        return Org(OrgId(row.id), row.name, Region(row.region), row.weight, row.webhook_secret)

    async def find_principal(self, token_hash: str, now: float) -> Principal | None:
        t, o = tables.api_tokens, tables.orgs
        query = (
            select(t.c.id, t.c.user_id, t.c.org_id, t.c.scopes, o.c.region, o.c.weight)
            .join(o, o.c.id == t.c.org_id)
            .where(and_(t.c.token_hash == token_hash, t.c.revoked_at.is_(None), t.c.expires_at > now))
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        scopes = frozenset(Scope(s) for s in json.loads(row.scopes) if s in Scope._value2member_map_)
        return Principal(TokenId(row.id), UserId(row.user_id), OrgId(row.org_id), Region(row.region), scopes,
                         row.weight)

    async def find_worker_principal(self, token_hash: str) -> WorkerPrincipal | None:
        w = tables.worker_tokens
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(w.c.id, w.c.region).where(
                and_(w.c.token_hash == token_hash, w.c.revoked_at.is_(None))))).first()
        return WorkerPrincipal(TokenId(row.id), Region(row.region)) if row else None

    async def count_users(self) -> int:
        async with self._engine.connect() as conn:
            return len((await conn.execute(select(tables.users.c.id).limit(1))).all())

    async def first_owner(self) -> tuple[OrgId, UserId] | None:
        m = tables.members
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(m.c.org_id, m.c.user_id).where(m.c.role == "owner")
                                      .order_by(m.c.created_at).limit(1))).first()
        return (OrgId(row.org_id), UserId(row.user_id)) if row else None

    async def touch_token(self, token_id: TokenId, *, at: float, ip: str | None) -> None:
        t = tables.api_tokens

        def write(conn: Connection) -> None:
            conn.execute(update(t).where(t.c.id == token_id).values(last_used_at=at, last_used_ip=ip))

        self._writer.submit(write)
