"""Who is calling: the principal behind an API token or a worker token, and the scopes a token may hold."""

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


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated API caller, bound to one org."""

    token_id: TokenId
    user_id: UserId
    org_id: OrgId
    region: Region
    scopes: frozenset[Scope]
    weight: float = 1.0

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes


@dataclass(frozen=True, slots=True)
class WorkerPrincipal:
    token_id: TokenId
    region: Region


@dataclass(frozen=True, slots=True)
class Org:
    id: OrgId
    name: str
    region: Region
    weight: float
    webhook_secret: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as it is shown once, at creation; only its hash is stored."""

    id: TokenId
    secret: str
    org_id: OrgId | None
    expires_at: float | None
