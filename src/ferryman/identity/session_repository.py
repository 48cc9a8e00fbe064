"""The browser_sessions table: rows to and from `BrowserSession`, found by the hash of their cookie secret.

Only SQL here; `SessionService` decides when a session starts, is touched and ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.identity.models import BrowserSession
from ferryman.store import StoreWriter, tables
from ferryman.types import UserId

s = tables.browser_sessions


def _session(row: Any) -> BrowserSession:
    return BrowserSession(
        row.id, UserId(row.user_id), row.created_at, row.last_seen_at, row.expires_at, row.ip, row.user_agent
    )


class SessionRepository:
    def __init__(self, *, engine: AsyncEngine, writer: StoreWriter) -> None:
        self._engine, self._writer = engine, writer

    async def insert(self, session: BrowserSession, *, token_hash: str) -> None:
        await self._writer.write(
            lambda conn: conn.execute(
                insert(s).values(
                    id=session.id,
                    token_hash=token_hash,
                    user_id=session.user_id,
                    created_at=session.created_at,
                    last_seen_at=session.last_seen_at,
                    expires_at=session.expires_at,
                    ip=session.ip,
                    user_agent=session.user_agent,
                )
            )
        )

    async def find_live_by_hash(self, token_hash: str, *, now: float) -> BrowserSession | None:
        """The session with this cookie hash that is neither revoked nor expired at `now`."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(s).where(
                        and_(s.c.token_hash == token_hash, s.c.revoked_at.is_(None), s.c.expires_at > now)
                    )
                )
            ).first()
        return _session(row) if row is not None else None

    def touch(self, session_id: str, *, now: float, ip: str | None) -> None:
        """Record activity, without waiting for the write (it only moves `last_seen_at`)."""
        self._writer.submit(
            lambda conn: conn.execute(update(s).where(s.c.id == session_id).values(last_seen_at=now, ip=ip))
        )

    async def find_live_for_user(self, user_id: UserId, *, now: float) -> list[BrowserSession]:
        """The user's live sessions, newest first."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(s)
                    .where(and_(s.c.user_id == user_id, s.c.revoked_at.is_(None), s.c.expires_at > now))
                    .order_by(s.c.created_at.desc())
                )
            ).all()
        return [_session(r) for r in rows]

    async def revoke(self, user_id: UserId, ids: Sequence[str], *, now: float) -> None:
        """End these sessions of the user (others' ids are left alone); idempotent."""
        await self._writer.write(
            lambda conn: conn.execute(
                update(s)
                .where(and_(s.c.user_id == user_id, s.c.id.in_(list(ids)), s.c.revoked_at.is_(None)))
                .values(revoked_at=now)
            )
        )
