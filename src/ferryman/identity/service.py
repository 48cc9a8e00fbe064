"""Authentication of API and worker tokens, and the bootstrap of a fresh installation."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import structlog

from ferryman.clock import Clock
from ferryman.errors import Unauthenticated
from ferryman.identity import tokens
from ferryman.identity.models import ALL_SCOPES, IssuedToken, Org, Principal, Scope, WorkerPrincipal
from ferryman.identity.repository import IdentityRepository
from ferryman.jobs import new_webhook_secret
from ferryman.types import OrgId, Region, TokenId, UserId, new_id

log = structlog.get_logger(__name__)

CACHE_SECONDS = 2.0
DAY_SECONDS = 86_400.0
BOOTSTRAP_TOKEN_DAYS = 90


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


class IdentityService:
    def __init__(self, *, repo: IdentityRepository, clock: Clock) -> None:
        self._repo, self._clock = repo, clock
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._inflight: dict[str, asyncio.Future[Principal | None]] = {}

    async def authenticate(self, secret: str | None, *, ip: str | None = None) -> Principal:
        """The principal of a valid, unexpired, unrevoked API token; raises Unauthenticated otherwise."""
        if not secret or not secret.startswith(tokens.API_PREFIX) or len(secret) > tokens.MAX_TOKEN_LENGTH:
            raise Unauthenticated("missing or malformed API token; send `Authorization: Bearer fm_…`")
        digest = tokens.hash_secret(secret)
        now = self._clock.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        # one lookup per token at a time: a burst of requests with a cold cache shares it
        inflight = self._inflight.get(digest)
        if inflight is None:
            inflight = self._inflight[digest] = asyncio.ensure_future(
                self._repo.find_principal(digest, self._clock.now()))
            inflight.add_done_callback(lambda _: self._inflight.pop(digest, None))
        principal = await asyncio.shield(inflight)
        if principal is None:
            self._cache.pop(digest, None)
            raise Unauthenticated("invalid, expired or revoked API token")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + CACHE_SECONDS, principal)
        await self._repo.touch_token(principal.token_id, at=self._clock.now(), ip=ip)
        return principal

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

    async def create_org(self, *, name: str, region: Region, user_id: UserId | None = None,
                         user_name: str = "owner", weight: float = 1.0) -> tuple[Org, UserId]:
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
        self, *, org_id: OrgId, user_id: UserId, name: str, scopes: frozenset[Scope] = ALL_SCOPES,
        expires_in_days: float = 30,
    ) -> IssuedToken:
        secret = tokens.new_secret(tokens.API_PREFIX)
        token_id = TokenId(new_id("tok"))
        expires_at = self._clock.now() + expires_in_days * DAY_SECONDS
        await self._repo.insert_api_token(
            token_id=token_id, org_id=org_id, user_id=user_id, name=name, token_hash=tokens.hash_secret(secret),
            last4=secret[-4:], scopes=sorted(s.value for s in scopes), at=self._clock.now(), expires_at=expires_at)
        return IssuedToken(token_id, secret, org_id, expires_at)

    async def issue_worker_token(self, *, region: Region, name: str) -> IssuedToken:
        secret = tokens.new_secret(tokens.WORKER_PREFIX)
        token_id = TokenId(new_id("wtk"))
        await self._repo.insert_worker_token(token_id=token_id, region=region, name=name,
                                             token_hash=tokens.hash_secret(secret), at=self._clock.now())
        return IssuedToken(token_id, secret, None, None)

    async def bootstrap(self, data_dir: Path, regions: list[Region]) -> Bootstrap:
        """First start: an admin user, an org and an API token; per region, a worker token. Idempotent.

        A restart keeps the tokens on disk; it mints a new one only where the file is missing or no longer valid.
        """
        admin_file = data_dir / "admin-token"
        minted: str | None = None
        if await self._repo.count_users() == 0:
            org, user_id = await self.create_org(name="default", region=Region.US, user_name="admin")
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
        issued = await self.issue_api_token(org_id=org_id, user_id=user_id, name="admin (ferryman up)",
                                            expires_in_days=BOOTSTRAP_TOKEN_DAYS)
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
