"""Organizations and their members: create, rename, billing address, data region, roles, ownership transfer.

Every call takes the acting principal and the org named in the URL; an org other than the principal's is
NotFound (a token is bound to one org), and each rule of the permission table is checked here.
"""

from __future__ import annotations

from ferryman.clock import Clock
from ferryman.errors import Forbidden, InvalidRequest, NotFound
from ferryman.identity.audit import AuditLog
from ferryman.identity.models import ALL_SCOPES, AuditAction, Member, Membership, Org, Principal, Role, Scope
from ferryman.identity.repository import IdentityRepository
from ferryman.identity.revocations import AuthState
from ferryman.jobs import new_webhook_secret
from ferryman.types import OrgId, Region, TokenId, UserId, new_id

MAX_NAME = 200
MAX_BILLING_ADDRESS = 2000
MAX_WEIGHT = 1000.0


def _check_name(name: str) -> str:
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= MAX_NAME:
        raise InvalidRequest(f"an org name has 1 to {MAX_NAME} characters, got {len(cleaned)}")
    return cleaned


class OrgService:
    def __init__(
        self,
        *,
        repo: IdentityRepository,
        clock: Clock,
        state: AuthState,
        audit: AuditLog,
        regions: list[Region],
    ) -> None:
        self._repo, self._clock, self._state, self._audit = repo, clock, state, audit
        self._regions = regions

    async def create(
        self, user_id: UserId, *, name: str, region: Region, weight: float = 1.0, ip: str | None = None
    ) -> Org:
        """A new org with this user as its Owner. Raises InvalidRequest for a bad name, a region not served or a
        fair-share weight out of range (only operators set one; the API creates orgs of weight 1)."""
        self._check_region(region)
        _check_weight(weight)
        org = Org(OrgId(new_id("org")), _check_name(name), region, weight, new_webhook_secret())
        now = self._clock.now()
        await self._repo.insert_org(org, at=now)
        await self._repo.insert_member(org_id=org.id, user_id=user_id, role=Role.OWNER.value, at=now)
        details = {"region": region.value} | ({"weight": f"{weight:g}"} if weight != 1.0 else {})
        await self._audit.record(
            AuditAction.ORG_CREATED, org_id=org.id, actor=user_id, target=org.id, details=details, ip=ip
        )
        return org

    async def create_for_operator(self, *, name: str, region: Region, weight: float = 1.0) -> Principal:
        """`ferryman orgs create`: an org with a new Owner user, checked and audited as `create` is; returns
        that Owner as operator commands act. Every check passes before anything is written."""
        self._check_region(region)
        _check_name(name)
        _check_weight(weight)
        user_id = UserId(new_id("usr"))
        await self._repo.insert_user(
            user_id=user_id, name="owner", email=None, admin=False, at=self._clock.now()
        )
        org = await self.create(user_id, name=name, region=region, weight=weight)
        return await self.operator_principal(org.id)

    async def memberships(self, user_id: UserId) -> list[Membership]:
        return await self._repo.find_memberships(user_id)

    async def get(self, actor: Principal, org_id: str) -> Org:
        if org_id != actor.org_id:
            raise NotFound(f"org {org_id!r} not found")
        org = await self._repo.get_org(actor.org_id)
        if org is None:
            raise NotFound(f"org {org_id!r} not found")
        return org

    async def update(
        self,
        actor: Principal,
        org_id: str,
        *,
        name: str | None = None,
        billing_address: str | None = None,
        region: Region | None = None,
        ip: str | None = None,
    ) -> Org:
        """Rename (org:admin), set the billing address (billing:write), change the data region (org:admin;
        applies to jobs submitted from now on, and is audited). All checks pass before anything changes."""
        org = await self.get(actor, org_id)
        values: dict[str, str] = {}
        if name is not None:
            _require(actor, Scope.ORG_ADMIN, "rename an org")
            values["name"] = _check_name(name)
        if billing_address is not None:
            _require(actor, Scope.BILLING_WRITE, "set the billing address")
            if len(billing_address) > MAX_BILLING_ADDRESS:
                raise InvalidRequest(f"billing_address has at most {MAX_BILLING_ADDRESS} characters")
            values["billing_address"] = billing_address
        if region is not None and region is not org.region:
            _require(actor, Scope.ORG_ADMIN, "change the data region")
            self._check_region(region)
            values["region"] = region.value
        if not values:
            return org
        await self._repo.update_org(org.id, **values)
        if "region" in values:
            assert region is not None
            self._state.org_changed(org.id, region)
            await self._audit.record(
                AuditAction.REGION_CHANGED,
                org_id=org.id,
                actor=actor.user_id,
                target=org.id,
                details={"from": org.region.value, "to": region.value},
                ip=ip,
            )
        if values.keys() - {"region"}:
            await self._audit.record(
                AuditAction.ORG_UPDATED,
                org_id=org.id,
                actor=actor.user_id,
                target=org.id,
                details={"fields": " ".join(sorted(values.keys() - {"region"}))},
                ip=ip,
            )
        return await self.get(actor, org_id)

    async def members(self, actor: Principal, org_id: str) -> list[Member]:
        org = await self.get(actor, org_id)
        return await self._repo.find_members(org.id)

    async def set_role(
        self, actor: Principal, org_id: str, user_id: str, role: Role, *, ip: str | None = None
    ) -> Member:
        """Change a member's role. Admins manage Members, Viewers and Disabled; only an Owner grants or takes
        away Owner or Admin. Raises Conflict when the last Owner would go; the change applies at once."""
        org = await self.get(actor, org_id)
        _require(actor, Scope.ORG_ADMIN, "change roles")
        target = await self._member(org.id, user_id)
        if role.at_least(Role.ADMIN) or target.role.at_least(Role.ADMIN):
            if actor.role is not Role.OWNER:
                raise Forbidden(f"only an Owner may change a {target.role.value} to {role.value}")
        if target.role is role:
            return target
        await self._repo.set_role(org.id, target.user_id, role)
        self._state.member_changed(org.id, target.user_id, now=self._clock.now())
        await self._audit.record(
            AuditAction.ROLE_CHANGED,
            org_id=org.id,
            actor=actor.user_id,
            target=target.user_id,
            details={"from": target.role.value, "to": role.value},
            ip=ip,
        )
        return await self._member(org.id, user_id)

    async def transfer_ownership(
        self, actor: Principal, org_id: str, to_user: str, *, ip: str | None = None
    ) -> list[Member]:
        """The actor (an Owner) makes another enabled member Owner and becomes Admin."""
        org = await self.get(actor, org_id)
        if actor.role is not Role.OWNER:
            raise Forbidden("only an Owner can transfer ownership")
        target = await self._member(org.id, to_user)
        if target.role is Role.DISABLED or target.user_id == actor.user_id:
            raise InvalidRequest("ownership goes to another member who is not disabled")
        await self._repo.transfer_ownership(org.id, from_user=actor.user_id, to_user=target.user_id)
        now = self._clock.now()
        self._state.member_changed(org.id, actor.user_id, now=now)
        self._state.member_changed(org.id, target.user_id, now=now)
        await self._audit.record(
            AuditAction.OWNERSHIP_TRANSFERRED,
            org_id=org.id,
            actor=actor.user_id,
            target=target.user_id,
            ip=ip,
        )
        return await self._repo.find_members(org.id)

    async def operator_principal(self, org_id: str) -> Principal:
        """The org's first Owner, as operator commands act: they run with access to the store, not a token."""
        org = await self._repo.get_org(OrgId(org_id))
        owners = [m for m in await self._repo.find_members(OrgId(org_id)) if m.role is Role.OWNER]
        if org is None or not owners:
            raise NotFound(f"org {org_id!r} not found")
        return Principal(
            TokenId("operator"), owners[0].user_id, org.id, org.region, ALL_SCOPES, org.weight, Role.OWNER
        )

    async def _member(self, org_id: OrgId, user_id: str) -> Member:
        for member in await self._repo.find_members(org_id):
            if member.user_id == user_id:
                return member
        raise NotFound(f"member {user_id!r} not found")

    def _check_region(self, region: Region) -> None:
        if region not in self._regions:
            raise InvalidRequest(
                f"region {region.value!r} is not served here; choose one of "
                f"{[r.value for r in self._regions]}"
            )


def _check_weight(weight: float) -> None:
    if not 0 < weight <= MAX_WEIGHT:
        raise InvalidRequest(f"a fair-share weight is above 0 and at most {MAX_WEIGHT:g}, got {weight:g}")


def _require(actor: Principal, scope: Scope, what: str) -> None:
    if not actor.has(scope):
        raise Forbidden(f"to {what} this token needs the {scope.value!r} scope")
