"""Invitations into an org: by email or as an open link, with a role and a number of uses, for 7 days.

The link carries `fmi_` + 32 random bytes; the store keeps only its hash. Accepting checks expiry, revocation
and uses inside the single writer, so a single-use link admits exactly one person.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.clock import Clock
from ferryman.errors import Conflict, Forbidden, Gone, InvalidRequest, NotFound
from ferryman.identity import tokens
from ferryman.identity.audit import AuditLog
from ferryman.identity.invitation_repository import InvitationRepository
from ferryman.identity.mail import Mailer
from ferryman.identity.models import AuditAction, Invitation, IssuedInvitation, Org, Principal, Role, Scope
from ferryman.identity.repository import IdentityRepository
from ferryman.store import StoreWriter
from ferryman.types import UserId, new_id

INVITATION_SECONDS = 7 * 86_400.0
MAX_USES = 1000
MAX_EMAIL = 320


def check_usable(row: Invitation, now: float) -> None:
    """Raise Gone (410) for a revoked, expired or used-up invitation."""
    if row.revoked_at is not None:
        raise Gone("this invitation was revoked; ask for a new one")
    if row.expires_at <= now:
        raise Gone("this invitation expired (they last 7 days); ask for a new one")
    if row.uses >= row.max_uses:
        raise Gone("this invitation has been used up; ask for a new one")


class InvitationService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        writer: StoreWriter,
        repo: IdentityRepository,
        clock: Clock,
        audit: AuditLog,
        mailer: Mailer | None,
        link_base: str,
    ) -> None:
        self._invitations = InvitationRepository(engine=engine, writer=writer)
        self._repo, self._clock = repo, clock
        self._audit, self._mailer, self._link_base = audit, mailer, link_base.rstrip("/")

    def link(self, secret: str) -> str:
        return f"{self._link_base}/web/invitations/{secret}"

    async def create(
        self,
        actor: Principal,
        org_id: str,
        *,
        role: Role,
        email: str | None = None,
        max_uses: int = 1,
        ip: str | None = None,
    ) -> IssuedInvitation:
        """Needs org:admin; Owner is never granted by invitation (transfer ownership instead) and only an
        Owner invites Admins. An email invitation is single-use and mailed; the link is returned either way."""
        org = await self._org(actor, org_id)
        if not actor.has(Scope.ORG_ADMIN):
            raise Forbidden("inviting needs the 'org:admin' scope")
        if role in (Role.OWNER, Role.DISABLED):
            raise InvalidRequest(f"an invitation grants admin, member or viewer, not {role.value}")
        if role is Role.ADMIN and actor.role is not Role.OWNER:
            raise Forbidden("only an Owner invites Admins")
        if email is not None and (
            len(email) > MAX_EMAIL or "@" not in email or "\n" in email or "\r" in email
        ):
            raise InvalidRequest("email must be one address such as ada@example.com")
        if not 1 <= max_uses <= MAX_USES or (email is not None and max_uses != 1):
            raise InvalidRequest(f"max_uses is 1 for an email invitation and 1 to {MAX_USES} for a link")
        secret, now = tokens.new_secret(tokens.INVITATION_PREFIX), self._clock.now()
        invitation = Invitation(
            new_id("inv"),
            org.id,
            email,
            role,
            max_uses,
            0,
            actor.user_id,
            now,
            now + INVITATION_SECONDS,
            None,
        )
        await self._invitations.insert(invitation, token_hash=tokens.hash_secret(secret))
        await self._audit.record(
            AuditAction.INVITATION_CREATED,
            org_id=org.id,
            actor=actor.user_id,
            target=invitation.id,
            details={
                "role": role.value,
                "max_uses": str(max_uses),
                "by_email": str(email is not None).lower(),
            },
            ip=ip,
        )
        sent = False
        if email is not None and self._mailer is not None:
            sent = await self._mailer.send(
                to=email,
                subject=f"You are invited to {org.name} on Ferryman",
                body=f"You are invited to join {org.name} on Ferryman as {role.value}.\n\n"
                f"Accept within 7 days: {self.link(secret)}\n",
            )
        return IssuedInvitation(invitation, secret, sent)

    async def find(self, actor: Principal, org_id: str) -> list[Invitation]:
        org = await self._org(actor, org_id)
        if not actor.has(Scope.ORG_ADMIN):
            raise Forbidden("listing invitations needs the 'org:admin' scope")
        return await self._invitations.find_for_org(org.id)

    async def revoke(
        self, actor: Principal, org_id: str, invitation_id: str, *, ip: str | None = None
    ) -> Invitation:
        """Idempotent; another org's invitation is NotFound."""
        found = {inv.id: inv for inv in await self.find(actor, org_id)}
        if invitation_id not in found:
            raise NotFound(f"invitation {invitation_id!r} not found")
        await self._invitations.revoke(invitation_id, now=self._clock.now())
        await self._audit.record(
            AuditAction.INVITATION_REVOKED,
            org_id=actor.org_id,
            actor=actor.user_id,
            target=invitation_id,
            ip=ip,
        )
        return {inv.id: inv for inv in await self.find(actor, org_id)}[invitation_id]

    async def preview(self, secret: str) -> tuple[Invitation, Org]:
        """The invitation behind a link and its org; NotFound for an unknown link, Gone for a dead one."""
        row = await self._row(secret)
        check_usable(row, self._clock.now())
        org = await self._repo.get_org(row.org_id)
        assert org is not None
        return row, org

    async def accept(self, secret: str, user_id: UserId, *, ip: str | None = None) -> Invitation:
        """Make the user a member with the invitation's role. Gone when dead, Conflict when already a member."""
        row = await self._row(secret)
        now = self._clock.now()
        if not await self._invitations.use(
            row.id, user_id, now=now, check=lambda fresh: check_usable(fresh, now)
        ):
            raise Conflict("you are already a member of this org")
        await self._audit.record(
            AuditAction.MEMBER_JOINED,
            org_id=row.org_id,
            actor=user_id,
            target=row.id,
            details={"role": row.role.value},
            ip=ip,
        )
        return row

    async def _row(self, secret: str) -> Invitation:
        if not secret.startswith(tokens.INVITATION_PREFIX) or len(secret) > tokens.MAX_TOKEN_LENGTH:
            raise NotFound("invitation not found")
        row = await self._invitations.find_by_hash(tokens.hash_secret(secret))
        if row is None:
            raise NotFound("invitation not found")
        return row

    async def _org(self, actor: Principal, org_id: str) -> Org:
        org = await self._repo.get_org(actor.org_id) if org_id == actor.org_id else None
        if org is None:
            raise NotFound(f"org {org_id!r} not found")
        return org
