"""Wire formats of the identity routes: request bodies (validated, size-limited) and the views they answer with."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ferryman.identity import (
    DEFAULT_TOKEN_DAYS,
    MAX_TOKEN_DAYS,
    SCOPE_PRESETS,
    AuditEvent,
    BrowserSession,
    Invitation,
    Member,
    Membership,
    Org,
    Role,
    Scope,
    TokenInfo,
)
from ferryman.types import Region


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrgCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    region: Region = Region.US


class OrgUpdate(Body):
    name: str | None = Field(None, min_length=1, max_length=200)
    billing_address: str | None = Field(None, max_length=2000)
    region: Region | None = None


class RoleUpdate(Body):
    role: Role


class OwnershipTransfer(Body):
    user_id: str = Field(min_length=1, max_length=40)


class InvitationCreate(Body):
    role: Role = Role.MEMBER
    email: str | None = Field(None, min_length=3, max_length=320)
    max_uses: int = Field(1, ge=1, le=1000)


class InvitationAccept(Body):
    token: str = Field(min_length=1, max_length=200)


class TokenCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(default_factory=list, max_length=len(Scope))
    preset: str | None = Field(None, max_length=40, description=f"one of {sorted(SCOPE_PRESETS)}")
    expires_in_days: int = Field(DEFAULT_TOKEN_DAYS, ge=1, le=MAX_TOKEN_DAYS)

    @model_validator(mode="after")
    def _known_preset(self) -> TokenCreate:
        if self.preset is not None and self.preset not in SCOPE_PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {sorted(SCOPE_PRESETS)}")
        return self

    def requested_scopes(self) -> frozenset[Scope]:
        return frozenset(self.scopes) | (SCOPE_PRESETS[self.preset] if self.preset else frozenset())


class ShortLivedCreate(Body):
    scopes: list[Scope] | None = Field(None, max_length=len(Scope))
    ttl_seconds: int = Field(900, ge=1, le=3600)


def org_view(org: Org, *, show_billing: bool) -> dict[str, Any]:
    view: dict[str, Any] = {"id": org.id, "object": "org", "name": org.name, "region": org.region.value}
    if show_billing:
        view["billing_address"] = org.billing_address
    return view


def membership_view(membership: Membership) -> dict[str, Any]:
    return {**org_view(membership.org, show_billing=False), "role": membership.role.value}


def member_view(member: Member) -> dict[str, Any]:
    return {
        "object": "member",
        "user_id": member.user_id,
        "name": member.name,
        "email": member.email,
        "role": member.role.value,
        "joined_at": member.joined_at,
    }


def token_view(token: TokenInfo) -> dict[str, Any]:
    return {
        "id": token.id,
        "object": "token",
        "org_id": token.org_id,
        "user_id": token.user_id,
        "name": token.name,
        "last4": token.last4,
        "scopes": sorted(token.scopes),
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "last_used_at": token.last_used_at,
        "last_used_ip": token.last_used_ip,
    }


def session_view(session: BrowserSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "object": "session",
        "created_at": session.created_at,
        "last_seen_at": session.last_seen_at,
        "expires_at": session.expires_at,
        "ip": session.ip,
        "user_agent": session.user_agent,
    }


def invitation_view(invitation: Invitation) -> dict[str, Any]:
    return {
        "id": invitation.id,
        "object": "invitation",
        "org_id": invitation.org_id,
        "email": invitation.email,
        "role": invitation.role.value,
        "max_uses": invitation.max_uses,
        "uses": invitation.uses,
        "created_by": invitation.created_by,
        "created_at": invitation.created_at,
        "expires_at": invitation.expires_at,
        "revoked_at": invitation.revoked_at,
    }


def audit_view(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "object": "audit_event",
        "org_id": event.org_id,
        "actor_user_id": event.actor_user_id,
        "action": event.action.value,
        "target": event.target,
        "details": event.details,
        "ip": event.ip,
        "created_at": event.created_at,
    }


def page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": items}
