"""Who is calling and what they may do: principals, scopes, roles and their permission table, and the identity
records (users, members, tokens, browser sessions, invitations, audit events) as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ferryman.types import OrgId, Region, TokenId, UserId


class Scope(StrEnum):
    JOBS_WRITE = "jobs:write"
    JOBS_READ = "jobs:read"
    LIBRARY_READ = "library:read"
    LIBRARY_WRITE = "library:write"
    ORG_ADMIN = "org:admin"
    BILLING_READ = "billing:read"
    BILLING_WRITE = "billing:write"


ALL_SCOPES = frozenset(Scope)


class Role(StrEnum):
    """A member's role in one org; Disabled keeps the membership (and its history) but grants nothing."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"
    DISABLED = "disabled"

    @property
    def scopes(self) -> frozenset[Scope]:
        return ROLE_SCOPES[self]

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank <= other.rank


# The permission table (docs/identity.md shows it): a token or session never holds a scope its role lacks.
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.OWNER: ALL_SCOPES,
    Role.ADMIN: ALL_SCOPES - {Scope.BILLING_WRITE},
    Role.MEMBER: frozenset({Scope.JOBS_WRITE, Scope.JOBS_READ, Scope.LIBRARY_READ, Scope.LIBRARY_WRITE}),
    Role.VIEWER: frozenset({Scope.JOBS_READ, Scope.LIBRARY_READ}),
    Role.DISABLED: frozenset(),
}
_ROLE_RANK = {Role.OWNER: 0, Role.ADMIN: 1, Role.MEMBER: 2, Role.VIEWER: 3, Role.DISABLED: 4}

SCOPE_PRESETS: dict[str, frozenset[Scope]] = {
    "inference": frozenset({Scope.JOBS_WRITE, Scope.JOBS_READ}),
    "read-only": frozenset({Scope.JOBS_READ, Scope.LIBRARY_READ, Scope.BILLING_READ}),
    "library": frozenset({Scope.LIBRARY_READ, Scope.LIBRARY_WRITE}),
    "admin": ALL_SCOPES,
}


class Provider(StrEnum):
    GITHUB = "github"
    GOOGLE = "google"


class AuditAction(StrEnum):
    SIGNED_IN = "user.signed_in"
    SIGNED_UP = "user.signed_up"
    PROVIDER_LINKED = "user.provider_linked"
    SESSIONS_REVOKED = "session.revoked"
    ORG_CREATED = "org.created"
    ORG_UPDATED = "org.updated"
    REGION_CHANGED = "org.region_changed"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    SHORT_TOKEN_MINTED = "token.short_lived_minted"
    ROLE_CHANGED = "member.role_changed"
    OWNERSHIP_TRANSFERRED = "member.ownership_transferred"
    MEMBER_JOINED = "member.joined"
    INVITATION_CREATED = "invitation.created"
    INVITATION_REVOKED = "invitation.revoked"
    # the autoscaler's machines: org-less events by the system (actor None), see docs/autoscaler.md
    INSTANCE_RENTED = "fleet.instance_rented"
    INSTANCE_DESTROYED = "fleet.instance_destroyed"
    WORKER_ENROLLED = "fleet.worker_enrolled"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated API caller, bound to one org; `scopes` are already cut down to what `role` allows."""

    token_id: TokenId
    user_id: UserId
    org_id: OrgId
    region: Region
    scopes: frozenset[Scope]
    weight: float = 1.0
    role: Role = Role.MEMBER
    short_lived: bool = False

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes


@dataclass(frozen=True, slots=True)
class WorkerPrincipal:
    """A worker token's holder. A token got by enrolment is bound to one worker id and its models (None: any)."""

    token_id: TokenId
    region: Region
    worker_id: str | None = None
    models: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Org:
    id: OrgId
    name: str
    region: Region
    weight: float
    webhook_secret: str
    billing_address: str | None = None


@dataclass(frozen=True, slots=True)
class Membership:
    org: Org
    role: Role


@dataclass(frozen=True, slots=True)
class User:
    id: UserId
    name: str
    email: str | None
    created_at: float
    adult_confirmed_at: float | None = None


@dataclass(frozen=True, slots=True)
class ProviderIdentity:
    """What a provider told us about a person at sign-in."""

    provider: Provider
    subject: str
    name: str
    email: str | None


@dataclass(frozen=True, slots=True)
class Member:
    user_id: UserId
    name: str
    email: str | None
    role: Role
    joined_at: float


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as it is shown once, at creation; only its hash is stored."""

    id: TokenId
    secret: str
    org_id: OrgId | None
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """An API token as listed: never its secret, only the last four characters."""

    id: TokenId
    org_id: OrgId
    user_id: UserId
    name: str
    last4: str
    scopes: frozenset[Scope]
    created_at: float
    expires_at: float
    revoked_at: float | None
    last_used_at: float | None
    last_used_ip: str | None


@dataclass(frozen=True, slots=True)
class BrowserSession:
    id: str
    user_id: UserId
    created_at: float
    last_seen_at: float
    expires_at: float
    ip: str | None
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class Invitation:
    id: str
    org_id: OrgId
    email: str | None
    role: Role
    max_uses: int
    uses: int
    created_by: UserId
    created_at: float
    expires_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class IssuedInvitation:
    """An invitation with its secret link token, shown once to the inviter (and mailed, for email invitations)."""

    invitation: Invitation
    secret: str
    email_sent: bool


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: str
    org_id: OrgId | None
    actor_user_id: UserId | None
    action: AuditAction
    target: str | None
    details: dict[str, str]
    ip: str | None
    created_at: float
