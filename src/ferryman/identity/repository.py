"""Users, provider identities, orgs, members and API token hashes in the global store.

Rules that must hold under concurrency (at least one Owner; an invitation's uses) are checked inside the write
function: the store has one writer, so the check and the change are one step.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.errors import Conflict
from ferryman.identity.models import (
    Member,
    Membership,
    Org,
    Principal,
    Provider,
    Role,
    Scope,
    TokenInfo,
    User,
    WorkerPrincipal,
)
from ferryman.store import StoreWriter, tables
from ferryman.types import OrgId, Region, TokenId, UserId


def parse_scopes(raw: str) -> frozenset[Scope]:
    return frozenset(Scope(s) for s in json.loads(raw) if s in Scope._value2member_map_)


def _org(row: Any) -> Org:
    return Org(
        OrgId(row.id), row.name, Region(row.region), row.weight, row.webhook_secret, row.billing_address
    )


def _token(row: Any) -> TokenInfo:
    return TokenInfo(
        TokenId(row.id),
        OrgId(row.org_id),
        UserId(row.user_id),
        row.name,
        row.last4,
        parse_scopes(row.scopes),
        row.created_at,
        row.expires_at,
        row.revoked_at,
        row.last_used_at,
        row.last_used_ip,
    )


def ensure_owner_remains(conn: Connection, org_id: OrgId, user_id: UserId, new_role: Role) -> None:
    """Raise Conflict when this change would leave the org without an Owner."""
    m = tables.members
    current = conn.execute(
        select(m.c.role).where(and_(m.c.org_id == org_id, m.c.user_id == user_id))
    ).scalar()
    if current != Role.OWNER.value or new_role is Role.OWNER:
        return
    owners = conn.execute(
        select(func.count()).select_from(m).where(and_(m.c.org_id == org_id, m.c.role == Role.OWNER.value))
    ).scalar_one()
    if owners <= 1:
        raise Conflict(
            "an org needs at least one Owner; make another member Owner first "
            "(POST /v1/orgs/{id}/transfer-ownership)"
        )


class IdentityRepository:
    def __init__(self, *, engine: AsyncEngine, writer: StoreWriter) -> None:
        self._engine = engine
        self._writer = writer

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def writer(self) -> StoreWriter:
        return self._writer

    async def _insert(self, table: Any, **values: Any) -> None:
        def write(conn: Connection) -> None:
            conn.execute(insert(table).values(**values))

        await self._writer.write(write)

    async def _update(self, table: Any, where: Any, **values: Any) -> int:
        def write(conn: Connection) -> int:
            return conn.execute(update(table).where(where).values(**values)).rowcount

        count: int = await self._writer.write(write)
        return count

    async def _first(self, query: Any) -> Any:
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).first()

    async def _all(self, query: Any) -> list[Any]:
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).all())

    # users and provider identities

    async def insert_user(
        self,
        *,
        user_id: UserId,
        name: str,
        email: str | None,
        admin: bool,
        at: float,
        adult_confirmed_at: float | None = None,
    ) -> None:
        await self._insert(
            tables.users,
            id=user_id,
            name=name,
            email=email,
            is_platform_admin=admin,
            created_at=at,
            adult_confirmed_at=adult_confirmed_at,
        )

    async def get_user(self, user_id: UserId) -> User | None:
        u = tables.users
        row = await self._first(select(u).where(u.c.id == user_id))
        return (
            User(UserId(row.id), row.name, row.email, row.created_at, row.adult_confirmed_at) if row else None
        )

    async def find_user_by_identity(self, provider: Provider, subject: str) -> UserId | None:
        i = tables.provider_identities
        row = await self._first(
            select(i.c.user_id).where(and_(i.c.provider == provider.value, i.c.subject == subject))
        )
        return UserId(row.user_id) if row else None

    async def insert_identity(
        self, *, provider: Provider, subject: str, user_id: UserId, email: str | None, at: float
    ) -> None:
        await self._insert(
            tables.provider_identities,
            provider=provider.value,
            subject=subject,
            user_id=user_id,
            email=email,
            created_at=at,
        )

    async def find_providers(self, user_id: UserId) -> list[Provider]:
        i = tables.provider_identities
        rows = await self._all(select(i.c.provider).where(i.c.user_id == user_id).order_by(i.c.provider))
        return [Provider(r.provider) for r in rows]

    async def count_users(self) -> int:
        async with self._engine.connect() as conn:
            return len((await conn.execute(select(tables.users.c.id).limit(1))).all())

    # orgs and members

    async def insert_org(self, org: Org, *, at: float) -> None:
        await self._insert(
            tables.orgs,
            id=org.id,
            name=org.name,
            region=org.region.value,
            weight=org.weight,
            webhook_secret=org.webhook_secret,
            created_at=at,
            billing_address=org.billing_address,
        )

    async def get_org(self, org_id: OrgId) -> Org | None:
        o = tables.orgs
        row = await self._first(select(o).where(o.c.id == org_id))
        return _org(row) if row else None

    async def update_org(self, org_id: OrgId, **values: Any) -> None:
        await self._update(tables.orgs, tables.orgs.c.id == org_id, **values)

    async def insert_member(self, *, org_id: OrgId, user_id: UserId, role: str, at: float) -> None:
        await self._insert(tables.members, org_id=org_id, user_id=user_id, role=role, created_at=at)

    async def get_role(self, org_id: OrgId, user_id: UserId) -> Role | None:
        m = tables.members
        row = await self._first(select(m.c.role).where(and_(m.c.org_id == org_id, m.c.user_id == user_id)))
        return Role(row.role) if row else None

    async def set_role(self, org_id: OrgId, user_id: UserId, role: Role) -> None:
        m = tables.members

        def write(conn: Connection) -> None:
            ensure_owner_remains(conn, org_id, user_id, role)
            conn.execute(
                update(m).where(and_(m.c.org_id == org_id, m.c.user_id == user_id)).values(role=role.value)
            )

        await self._writer.write(write)

    async def transfer_ownership(self, org_id: OrgId, *, from_user: UserId, to_user: UserId) -> None:
        """The new Owner is promoted before the old one steps down to Admin, in one transaction."""
        m = tables.members

        def write(conn: Connection) -> None:
            conn.execute(
                update(m)
                .where(and_(m.c.org_id == org_id, m.c.user_id == to_user))
                .values(role=Role.OWNER.value)
            )
            conn.execute(
                update(m)
                .where(and_(m.c.org_id == org_id, m.c.user_id == from_user))
                .values(role=Role.ADMIN.value)
            )

        await self._writer.write(write)

    async def find_members(self, org_id: OrgId) -> list[Member]:
        m, u = tables.members, tables.users
        rows = await self._all(
            select(m.c.user_id, u.c.name, u.c.email, m.c.role, m.c.created_at)
            .join(u, u.c.id == m.c.user_id)
            .where(m.c.org_id == org_id)
            .order_by(m.c.created_at, m.c.user_id)
        )
        return [Member(UserId(r.user_id), r.name, r.email, Role(r.role), r.created_at) for r in rows]

    async def find_memberships(self, user_id: UserId) -> list[Membership]:
        m, o = tables.members, tables.orgs
        rows = await self._all(
            select(o, m.c.role)
            .join(m, m.c.org_id == o.c.id)
            .where(m.c.user_id == user_id)
            .order_by(m.c.created_at, o.c.id)
        )
        return [Membership(_org(r), Role(r.role)) for r in rows]

    async def first_owner(self) -> tuple[OrgId, UserId] | None:
        m = tables.members
        row = await self._first(
            select(m.c.org_id, m.c.user_id)
            .where(m.c.role == Role.OWNER.value)
            .order_by(m.c.created_at)
            .limit(1)
        )
        return (OrgId(row.org_id), UserId(row.user_id)) if row else None

    # API and worker tokens

    async def insert_api_token(
        self,
        *,
        token_id: TokenId,
        org_id: OrgId,
        user_id: UserId,
        name: str,
        token_hash: str,
        last4: str,
        scopes: list[str],
        at: float,
        expires_at: float,
    ) -> None:
        await self._insert(
            tables.api_tokens,
            id=token_id,
            org_id=org_id,
            user_id=user_id,
            name=name,
            token_hash=token_hash,
            last4=last4,
            scopes=json.dumps(scopes),
            created_at=at,
            expires_at=expires_at,
        )

    async def insert_worker_token(
        self, *, token_id: TokenId, region: Region, name: str, token_hash: str, at: float
    ) -> None:
        await self._insert(
            tables.worker_tokens,
            id=token_id,
            region=region.value,
            name=name,
            token_hash=token_hash,
            created_at=at,
        )

    async def revoke_worker_token(self, token_id: str, *, at: float) -> None:
        w = tables.worker_tokens
        await self._update(w, and_(w.c.id == token_id, w.c.revoked_at.is_(None)), revoked_at=at)

    async def find_principal(self, token_hash: str, now: float) -> Principal | None:
        """The principal of a live token whose creator is still an enabled member; scopes cut to the role."""
        t, o, m = tables.api_tokens, tables.orgs, tables.members
        query = (
            select(t.c.id, t.c.user_id, t.c.org_id, t.c.scopes, o.c.region, o.c.weight, m.c.role)
            .join(o, o.c.id == t.c.org_id)
            .join(m, and_(m.c.org_id == t.c.org_id, m.c.user_id == t.c.user_id))
            .where(and_(t.c.token_hash == token_hash, t.c.revoked_at.is_(None), t.c.expires_at > now))
        )
        row = await self._first(query)
        if row is None or row.role == Role.DISABLED.value:
            return None
        role = Role(row.role)
        return Principal(
            TokenId(row.id),
            UserId(row.user_id),
            OrgId(row.org_id),
            Region(row.region),
            parse_scopes(row.scopes) & role.scopes,
            row.weight,
            role,
        )

    async def find_tokens(self, org_id: OrgId, user_id: UserId | None) -> list[TokenInfo]:
        t = tables.api_tokens
        where = and_(t.c.org_id == org_id, t.c.user_id == user_id) if user_id else t.c.org_id == org_id
        return [_token(r) for r in await self._all(select(t).where(where).order_by(t.c.id))]

    async def get_token(self, org_id: OrgId, token_id: str) -> TokenInfo | None:
        t = tables.api_tokens
        row = await self._first(select(t).where(and_(t.c.org_id == org_id, t.c.id == token_id)))
        return _token(row) if row else None

    async def revoke_token(self, org_id: OrgId, token_id: TokenId, *, at: float) -> None:
        t = tables.api_tokens
        await self._update(
            t, and_(t.c.org_id == org_id, t.c.id == token_id, t.c.revoked_at.is_(None)), revoked_at=at
        )

    async def find_worker_principal(self, token_hash: str) -> WorkerPrincipal | None:
        w = tables.worker_tokens
        row = await self._first(
            select(w.c.id, w.c.region, w.c.worker_id, w.c.models).where(
                and_(w.c.token_hash == token_hash, w.c.revoked_at.is_(None))
            )
        )
        if row is None:
            return None
        models = frozenset(json.loads(row.models)) if row.models is not None else None
        return WorkerPrincipal(TokenId(row.id), Region(row.region), row.worker_id, models)

    async def touch_token(self, token_id: TokenId, *, at: float, ip: str | None) -> None:
        t = tables.api_tokens

        def write(conn: Connection) -> None:
            conn.execute(update(t).where(t.c.id == token_id).values(last_used_at=at, last_used_ip=ip))

        self._writer.submit(write)

    async def is_platform_admin(self, user_id: UserId) -> bool:
        u = tables.users
        row = await self._first(select(u.c.is_platform_admin).where(u.c.id == user_id))
        return bool(row.is_platform_admin) if row else False

    async def set_platform_admin(self, user_id: UserId) -> None:
        await self._update(tables.users, tables.users.c.id == user_id, is_platform_admin=True)
