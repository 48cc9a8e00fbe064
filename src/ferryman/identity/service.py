"""Authentication of API and worker tokens, and the bootstrap of a fresh installation."""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import structlog

from ferryman.clock import Clock
from ferryman.errors import Forbidden, InvalidRequest, NotFound, Unauthenticated
from ferryman.identity import tokens
from ferryman.identity.audit import AuditLog
from ferryman.identity.models import (
    ALL_SCOPES,
    AuditAction,
    IssuedToken,
    Org,
    Principal,
    Role,
    Scope,
    TokenInfo,
    WorkerPrincipal,
)
from ferryman.identity.repository import IdentityRepository
from ferryman.identity.revocations import SHORT_TOKEN_MAX_SECONDS, AuthState
from ferryman.jobs import new_webhook_secret
from ferryman.types import OrgId, Region, TokenId, UserId, new_id

log = structlog.get_logger(__name__)

CACHE_SECONDS = 2.0
DAY_SECONDS = 86_400.0
BOOTSTRAP_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 90
DEFAULT_TOKEN_DAYS = 30


def _check_grantable(scopes: frozenset[Scope], role: Role, held: frozenset[Scope]) -> None:
    """Raise Forbidden when `scopes` exceed what the role allows or what the caller itself holds."""
    if beyond_role := sorted(s.value for s in scopes - role.scopes):
        raise Forbidden(
            f"a {role.value} may not hold {beyond_role}; allowed: {sorted(s.value for s in role.scopes)}",
            details={"scopes": beyond_role},
        )
    if beyond_caller := sorted(s.value for s in scopes - held):
        raise Forbidden(
            f"the calling token lacks {beyond_caller}, so it cannot grant them",
            details={"scopes": beyond_caller},
        )


@dataclass(frozen=True, slots=True)
class ShortLivedToken:
    secret: str
    scopes: frozenset[Scope]
    expires_at: float


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What a first start created; `admin_token` is set only when a new token was minted."""

    admin_token: str | None
    worker_tokens: dict[str, str]


def write_secret_file(path: Path, secret: str) -> None:
    """Write a secret readable by its owner only (mode 600), replacing any older one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.replace(tmp, path)


def load_or_create_secret_key(path: Path) -> bytes:
    """The key that signs short-lived tokens and CSRF tokens: 32 random bytes kept in the data dir (mode 600).

    Scaled out, every API node must share it: configure `secret_key` instead (docs/adr/0003-short-lived-tokens.md).
    """
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        key = secrets.token_bytes(32)
        write_secret_file(path, key.hex())
        return key


class IdentityService:
    """Authenticates API tokens (database, cached 2 s) and short-lived tokens (signature only), and manages
    API tokens. Every revocation goes through `state`, so it holds in this process from the next request on."""

    def __init__(
        self,
        *,
        repo: IdentityRepository,
        clock: Clock,
        state: AuthState | None = None,
        audit: AuditLog | None = None,
        signing_key: bytes | None = None,
    ) -> None:
        self._repo, self._clock = repo, clock
        self._state = state or AuthState()
        self._audit = audit or AuditLog(engine=repo.engine, writer=repo.writer, clock=clock)
        self._key = signing_key or secrets.token_bytes(32)
        self._inflight: dict[str, asyncio.Future[Principal | None]] = {}

    @property
    def state(self) -> AuthState:
        return self._state

    async def authenticate(self, secret: str | None, *, ip: str | None = None) -> Principal:
        """The principal of a valid, unexpired, unrevoked token of an enabled member; raises Unauthenticated."""
        if secret and secret.startswith(tokens.SHORT_PREFIX):
            return self._authenticate_short(secret)
        if not secret or not secret.startswith(tokens.API_PREFIX) or len(secret) > tokens.MAX_TOKEN_LENGTH:
            raise Unauthenticated("missing or malformed API token; send `Authorization: Bearer fm_…`")
        digest = tokens.hash_secret(secret)
        now = self._clock.monotonic()
        cached = self._state.cached(digest, monotonic_now=now)
        if cached is not None:
            return cached
        # one lookup per token at a time: a burst of requests with a cold cache shares it
        inflight = self._inflight.get(digest)
        if inflight is None:
            inflight = self._inflight[digest] = asyncio.ensure_future(
                self._repo.find_principal(digest, self._clock.now())
            )
            inflight.add_done_callback(lambda _: self._inflight.pop(digest, None))
        principal = await asyncio.shield(inflight)
        if principal is None:
            self._state.uncache(digest)
            raise Unauthenticated("invalid, expired or revoked API token, or its member was disabled")
        self._state.cache(digest, principal, until=now + CACHE_SECONDS)
        await self._repo.touch_token(principal.token_id, at=self._clock.now(), ip=ip)
        return principal

    def _authenticate_short(self, secret: str) -> Principal:
        claims = tokens.verify_claims(self._key, secret)
        if (
            claims is None
            or not isinstance(claims.get("exp"), int | float)
            or claims["exp"] <= self._clock.now()
        ):
            raise Unauthenticated(
                "invalid or expired short-lived token; mint a new one (POST /v1/tokens/short-lived)"
            )
        org_id, user_id, role = OrgId(claims["org"]), UserId(claims["uid"]), Role(claims["role"])
        if not self._state.is_short_token_valid(
            parent=claims["tid"], org_id=org_id, user_id=user_id, issued_at=claims["iat"]
        ):
            raise Unauthenticated(
                "this short-lived token was revoked (its parent ended or its member changed)"
            )
        scopes = frozenset(Scope(s) for s in claims["scp"]) & role.scopes
        return Principal(
            TokenId(claims["tid"]),
            user_id,
            org_id,
            self._state.region_of(org_id, Region(claims["reg"])),
            scopes,
            float(claims["w"]),
            role,
            short_lived=True,
        )

    async def mint_short_lived(
        self,
        *,
        parent: str,
        user_id: UserId,
        org_id: OrgId,
        scopes: frozenset[Scope] | None,
        ttl_seconds: int,
        ip: str | None = None,
    ) -> ShortLivedToken:
        """A token valid for `ttl_seconds` (at most an hour), holding at most what the member's role allows now.

        Raises InvalidRequest for a bad lifetime, NotFound when the user is not a member, Forbidden when the
        scopes exceed the role.
        """
        if not 1 <= ttl_seconds <= SHORT_TOKEN_MAX_SECONDS:
            raise InvalidRequest(
                f"ttl_seconds must be between 1 and {SHORT_TOKEN_MAX_SECONDS}, got {ttl_seconds}"
            )
        org, role = await self._repo.get_org(org_id), await self._repo.get_role(org_id, user_id)
        if org is None or role is None:
            raise NotFound(f"org {org_id!r} not found")
        granted = role.scopes if scopes is None else scopes
        _check_grantable(granted, role, role.scopes)
        now, names = self._clock.now(), sorted(s.value for s in granted)
        claims: dict[str, object] = {
            "v": 1,
            "tid": parent,
            "uid": user_id,
            "org": org_id,
            "reg": org.region.value,
            "w": org.weight,
            "scp": names,
            "role": role.value,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": secrets.token_hex(8),
        }
        await self._audit.record(
            AuditAction.SHORT_TOKEN_MINTED,
            org_id=org_id,
            actor=user_id,
            target=parent,
            details={"ttl_seconds": str(ttl_seconds), "scopes": " ".join(names)},
            ip=ip,
        )
        return ShortLivedToken(tokens.sign_claims(self._key, claims), granted, now + ttl_seconds)

    async def create_token(
        self,
        actor: Principal,
        *,
        name: str,
        scopes: frozenset[Scope],
        expires_in_days: int,
        ip: str | None = None,
    ) -> tuple[IssuedToken, TokenInfo]:
        """An API token for the actor in the actor's org. Raises Forbidden for a Viewer, or for scopes beyond
        the actor's role or the calling token; InvalidRequest for a bad expiry. Nothing is stored on refusal."""
        if not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
            raise InvalidRequest(
                f"expires_in_days must be between 1 and {MAX_TOKEN_DAYS}, got {expires_in_days}"
            )
        if not actor.role.at_least(Role.MEMBER):
            raise Forbidden(f"a {actor.role.value} cannot create API tokens; Members and above can")
        if not scopes:
            raise InvalidRequest("a token needs at least one scope (or a preset)")
        _check_grantable(scopes, actor.role, actor.scopes)
        issued = await self.issue_api_token(
            org_id=actor.org_id,
            user_id=actor.user_id,
            name=name,
            scopes=scopes,
            expires_in_days=expires_in_days,
        )
        await self._audit.record(
            AuditAction.TOKEN_CREATED,
            org_id=actor.org_id,
            actor=actor.user_id,
            target=issued.id,
            details={"scopes": " ".join(sorted(scopes))},
            ip=ip,
        )
        info = await self._repo.get_token(actor.org_id, issued.id)
        assert info is not None
        return issued, info

    async def find_tokens(self, actor: Principal, *, whole_org: bool) -> list[TokenInfo]:
        """The actor's own tokens; the whole org's with `whole_org` (needs org:admin)."""
        if whole_org and not actor.has(Scope.ORG_ADMIN):
            raise Forbidden("listing every member's tokens needs the 'org:admin' scope")
        return await self._repo.find_tokens(actor.org_id, None if whole_org else actor.user_id)

    async def revoke_token(self, actor: Principal, token_id: str, *, ip: str | None = None) -> TokenInfo:
        """Revoke now (idempotent). Another member's token needs org:admin; another org's token is NotFound."""
        info = await self._repo.get_token(actor.org_id, token_id)
        if info is None or (info.user_id != actor.user_id and not actor.has(Scope.ORG_ADMIN)):
            raise NotFound(f"token {token_id!r} not found")
        if info.revoked_at is None:
            await self._repo.revoke_token(actor.org_id, info.id, at=self._clock.now())
            await self._audit.record(
                AuditAction.TOKEN_REVOKED, org_id=actor.org_id, actor=actor.user_id, target=info.id, ip=ip
            )
        self._state.revoke_token(info.id, now=self._clock.now())
        refreshed = await self._repo.get_token(actor.org_id, token_id)
        assert refreshed is not None
        return refreshed

    async def authenticate_worker(self, secret: str | None) -> WorkerPrincipal:
        if not secret or not secret.startswith(tokens.WORKER_PREFIX) or len(secret) > tokens.MAX_TOKEN_LENGTH:
            raise Unauthenticated("missing or malformed worker token; pass --token with a fmw_… worker token")
        principal = await self._repo.find_worker_principal(tokens.hash_secret(secret))
        if principal is None:
            raise Unauthenticated("invalid or revoked worker token")
        return principal

    async def get_org(self, org_id: OrgId) -> Org | None:
        return await self._repo.get_org(org_id)

    async def webhook_secret(self, org_id: str) -> str:
        org = await self._repo.get_org(OrgId(org_id))
        if org is None:
            raise LookupError(org_id)
        return org.webhook_secret

    async def create_org(
        self,
        *,
        name: str,
        region: Region,
        user_id: UserId | None = None,
        user_name: str = "owner",
        weight: float = 1.0,
    ) -> tuple[Org, UserId]:
        """Create an org with an Owner (a new user unless one is given)."""
        now = self._clock.now()
        if user_id is None:
            user_id = UserId(new_id("usr"))
            await self._repo.insert_user(user_id=user_id, name=user_name, email=None, admin=False, at=now)
        org = Org(OrgId(new_id("org")), name, region, weight, new_webhook_secret())
        await self._repo.insert_org(org, at=now)
        await self._repo.insert_member(org_id=org.id, user_id=user_id, role="owner", at=now)
        return org, user_id

    async def issue_api_token(
        self,
        *,
        org_id: OrgId,
        user_id: UserId,
        name: str,
        scopes: frozenset[Scope] = ALL_SCOPES,
        expires_in_days: float = 30,
    ) -> IssuedToken:
        secret = tokens.new_secret(tokens.API_PREFIX)
        token_id = TokenId(new_id("tok"))
        expires_at = self._clock.now() + expires_in_days * DAY_SECONDS
        await self._repo.insert_api_token(
            token_id=token_id,
            org_id=org_id,
            user_id=user_id,
            name=name,
            token_hash=tokens.hash_secret(secret),
            last4=secret[-4:],
            scopes=sorted(s.value for s in scopes),
            at=self._clock.now(),
            expires_at=expires_at,
        )
        return IssuedToken(token_id, secret, org_id, expires_at)

    async def issue_worker_token(self, *, region: Region, name: str) -> IssuedToken:
        secret = tokens.new_secret(tokens.WORKER_PREFIX)
        token_id = TokenId(new_id("wtk"))
        await self._repo.insert_worker_token(
            token_id=token_id,
            region=region,
            name=name,
            token_hash=tokens.hash_secret(secret),
            at=self._clock.now(),
        )
        return IssuedToken(token_id, secret, None, None)

    async def bootstrap(self, data_dir: Path, regions: list[Region]) -> Bootstrap:
        """First start: an admin user, an org in the first of `regions` and an API token; per region, a worker
        token. Idempotent.

        A restart keeps the tokens on disk; it mints a new one only where the file is missing or no longer valid.
        """
        admin_file = data_dir / "admin-token"
        minted: str | None = None
        if await self._repo.count_users() == 0:
            # the first region configured: an EU-only install keeps its admin org's data in the EU
            org, user_id = await self.create_org(name="default", region=regions[0], user_name="admin")
            await self._repo.set_platform_admin(user_id)  # the operator: may see fleet-wide admin views
            minted = await self._mint_admin(admin_file, org.id, user_id)
        elif not await self._file_token_valid(admin_file):
            # the admin token expired or its file was removed: mint a fresh one for the first owner
            owner = await self._repo.first_owner()
            if owner is not None:
                minted = await self._mint_admin(admin_file, owner[0], owner[1])
        workers: dict[str, str] = {}
        for region in regions:
            path = data_dir / f"worker-token-{region.value}"
            if await self._file_worker_token_valid(path, region):
                continue
            issued = await self.issue_worker_token(region=region, name=f"local-{region.value}")
            write_secret_file(path, issued.secret)
            workers[region.value] = issued.secret
        return Bootstrap(minted, workers)

    async def _mint_admin(self, path: Path, org_id: OrgId, user_id: UserId) -> str:
        issued = await self.issue_api_token(
            org_id=org_id, user_id=user_id, name="admin (ferryman up)", expires_in_days=BOOTSTRAP_TOKEN_DAYS
        )
        write_secret_file(path, issued.secret)
        return issued.secret

    async def _file_token_valid(self, path: Path) -> bool:
        try:
            await self.authenticate(path.read_text().strip())
        except (OSError, Unauthenticated):
            return False
        return True

    async def _file_worker_token_valid(self, path: Path, region: Region) -> bool:
        try:
            principal = await self.authenticate_worker(path.read_text().strip())
        except (OSError, Unauthenticated):
            return False
        return principal.region is region

    async def is_platform_admin(self, user_id: UserId) -> bool:
        """Whether the user operates this Ferryman (fleet-wide views), beyond any org role. The first user
        `ferryman up` creates is one."""
        return await self._repo.is_platform_admin(user_id)
