"""Browser sessions: server-side records behind an opaque cookie; rotation on sign-in, sign-out everywhere.

The cookie holds `fmb_` + 32 random bytes; the store keeps only its SHA-256. CSRF tokens are an HMAC of the
session's hash, so they need no storage and die with the session.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.clock import Clock
from ferryman.errors import NotFound
from ferryman.identity import tokens
from ferryman.identity.audit import AuditLog
from ferryman.identity.models import AuditAction, BrowserSession
from ferryman.identity.revocations import AuthState
from ferryman.identity.session_repository import SessionRepository
from ferryman.store import StoreWriter
from ferryman.types import UserId, new_id

MAX_USER_AGENT = 300
TOUCH_EVERY_SECONDS = 60.0


class SessionService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        writer: StoreWriter,
        clock: Clock,
        state: AuthState,
        audit: AuditLog,
        key: bytes,
        lifetime_seconds: float,
    ) -> None:
        self._repo, self._clock = SessionRepository(engine=engine, writer=writer), clock
        self._state, self._audit, self._key, self._lifetime = state, audit, key, lifetime_seconds

    async def start(
        self, user_id: UserId, *, ip: str | None, user_agent: str | None, replaces: str | None = None
    ) -> tuple[BrowserSession, str]:
        """A new session and its cookie secret. `replaces` (the cookie presented at sign-in, if any) is ended:
        a session id never survives a sign-in, so a planted cookie gains nothing."""
        if replaces:
            await self.end(replaces)
        secret, now = tokens.new_secret(tokens.SESSION_PREFIX), self._clock.now()
        session = BrowserSession(
            new_id("ses"),
            user_id,
            now,
            now,
            now + self._lifetime,
            ip,
            (user_agent or "")[:MAX_USER_AGENT] or None,
        )

        await self._repo.insert(session, token_hash=tokens.hash_secret(secret))
        return session, secret

    async def resolve(self, secret: str | None, *, ip: str | None = None) -> BrowserSession | None:
        """The live session behind a cookie, or None; reads the store every time, so an ended one stops now."""
        if (
            not secret
            or not secret.startswith(tokens.SESSION_PREFIX)
            or len(secret) > tokens.MAX_TOKEN_LENGTH
        ):
            return None
        now = self._clock.now()
        session = await self._repo.find_live_by_hash(tokens.hash_secret(secret), now=now)
        if session is None:
            return None
        if now - session.last_seen_at > TOUCH_EVERY_SECONDS:
            self._repo.touch(session.id, now=now, ip=ip)
        return session

    def csrf_token(self, session: BrowserSession | str) -> str:
        """Bound to one session (or, before sign-in, to one pending sign-in nonce)."""
        subject = session.id if isinstance(session, BrowserSession) else session
        return hmac.new(self._key, f"csrf:{subject}".encode(), hashlib.sha256).hexdigest()

    def is_csrf_valid(self, session: BrowserSession | str, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf_token(session), presented or "")

    async def end(self, secret: str) -> None:
        """Sign out the session behind this cookie; idempotent."""
        session = await self.resolve(secret)
        if session is not None:
            await self._revoke(session.user_id, [session.id])

    async def find(self, user_id: UserId) -> list[BrowserSession]:
        return await self._repo.find_live_for_user(user_id, now=self._clock.now())

    async def revoke(self, user_id: UserId, session_id: str) -> None:
        """End one of this user's sessions; another user's id is NotFound."""
        if session_id not in {s.id for s in await self.find(user_id)}:
            raise NotFound(f"session {session_id!r} not found")
        await self._revoke(user_id, [session_id])
        await self._audit.record(AuditAction.SESSIONS_REVOKED, org_id=None, actor=user_id, target=session_id)

    async def revoke_all(self, user_id: UserId) -> int:
        """Sign out everywhere: every session of the user ends now. Returns how many ended."""
        ids = [s.id for s in await self.find(user_id)]
        await self._revoke(user_id, ids)
        await self._audit.record(
            AuditAction.SESSIONS_REVOKED,
            org_id=None,
            actor=user_id,
            target="all",
            details={"count": str(len(ids))},
        )
        return len(ids)

    async def _revoke(self, user_id: UserId, ids: list[str]) -> None:
        if not ids:
            return
        now = self._clock.now()
        await self._repo.revoke(user_id, ids, now=now)
        for session_id in ids:
            self._state.revoke_token(session_id, now=now)
