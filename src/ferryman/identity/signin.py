"""Sign-in with a provider identity: find the user, sign up a new one (18+ confirmed, invitation when
required), link a second provider, and record the sign-in in the audit log of each of the user's orgs."""

from __future__ import annotations

from ferryman.clock import Clock
from ferryman.errors import Conflict, Forbidden, InvalidRequest
from ferryman.identity.audit import AuditLog
from ferryman.identity.invitations import InvitationService
from ferryman.identity.models import AuditAction, ProviderIdentity, Role, User
from ferryman.identity.repository import IdentityRepository
from ferryman.types import UserId, new_id

MAX_NAME = 200


class SignInService:
    def __init__(
        self,
        *,
        repo: IdentityRepository,
        invitations: InvitationService,
        audit: AuditLog,
        clock: Clock,
        invite_required: bool,
    ) -> None:
        self._repo, self._invitations, self._audit, self._clock = repo, invitations, audit, clock
        self._invite_required = invite_required

    async def find_user(self, identity: ProviderIdentity) -> UserId | None:
        return await self._repo.find_user_by_identity(identity.provider, identity.subject)

    async def get_user(self, user_id: UserId) -> User | None:
        return await self._repo.get_user(user_id)

    async def sign_up(
        self, identity: ProviderIdentity, *, is_adult: bool, invitation: str | None, ip: str | None = None
    ) -> UserId:
        """Create the user of a first sign-in. Raises InvalidRequest without the 18+ confirmation, Forbidden
        when sign-up needs an invitation and none is given, Gone/NotFound for a dead or unknown one; on any
        of these nothing is created."""
        if not is_adult:
            raise InvalidRequest("Ferryman is for people aged 18 or older; confirm your age to continue")
        if invitation is not None:
            await self._invitations.preview(invitation)
        elif self._invite_required:
            raise Forbidden(
                "sign-up on this Ferryman is by invitation only; open the invitation link you received"
            )
        if await self.find_user(identity) is not None:
            raise Conflict("this account already exists; sign in instead")
        user_id, now = UserId(new_id("usr")), self._clock.now()
        await self._repo.insert_user(
            user_id=user_id,
            name=identity.name[:MAX_NAME] or identity.subject[:MAX_NAME],
            email=identity.email,
            admin=False,
            at=now,
            adult_confirmed_at=now,
        )
        await self._repo.insert_identity(
            provider=identity.provider,
            subject=identity.subject,
            user_id=user_id,
            email=identity.email,
            at=now,
        )
        await self._audit.record(
            AuditAction.SIGNED_UP,
            org_id=None,
            actor=user_id,
            details={"provider": identity.provider.value},
            ip=ip,
        )
        if invitation is not None:
            await self._invitations.accept(invitation, user_id, ip=ip)
        return user_id

    async def link(self, user_id: UserId, identity: ProviderIdentity, *, ip: str | None = None) -> None:
        """Add a provider to a signed-in user; idempotent; Conflict if it belongs to someone else."""
        owner = await self.find_user(identity)
        if owner == user_id:
            return
        if owner is not None:
            raise Conflict(
                f"this {identity.provider.value} account is already linked to another Ferryman user"
            )
        if identity.provider in await self._repo.find_providers(user_id):
            raise Conflict(f"another {identity.provider.value} account is already linked to you")
        await self._repo.insert_identity(
            provider=identity.provider,
            subject=identity.subject,
            user_id=user_id,
            email=identity.email,
            at=self._clock.now(),
        )
        for membership in await self._repo.find_memberships(user_id):
            await self._audit.record(
                AuditAction.PROVIDER_LINKED,
                org_id=membership.org.id,
                actor=user_id,
                details={"provider": identity.provider.value},
                ip=ip,
            )

    async def record_sign_in(self, user_id: UserId, identity: ProviderIdentity, *, ip: str | None) -> None:
        for membership in await self._repo.find_memberships(user_id):
            if membership.role is not Role.DISABLED:
                await self._audit.record(
                    AuditAction.SIGNED_IN,
                    org_id=membership.org.id,
                    actor=user_id,
                    details={"provider": identity.provider.value},
                    ip=ip,
                )

    async def providers(self, user_id: UserId) -> list[str]:
        return [p.value for p in await self._repo.find_providers(user_id)]
