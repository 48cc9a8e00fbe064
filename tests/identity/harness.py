"""The real app in-process, with helpers that set up orgs, members and tokens through the real services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from ferryman.app import create_app
from ferryman.clock import FakeClock
from ferryman.config import Settings
from ferryman.container import Container
from ferryman.identity import ALL_SCOPES, Accounts, Org, Role, Scope
from ferryman.types import OrgId, Region, UserId

BASE_URL = "http://localhost"


@dataclass(frozen=True)
class Seat:
    """A user in an org with a role, and an API token of theirs."""

    org_id: OrgId
    user_id: UserId
    token: str
    token_id: str


@dataclass
class Harness:
    container: Container
    client: httpx.AsyncClient
    clock: FakeClock
    app: Starlette

    @property
    def accounts(self) -> Accounts:
        return self.container.accounts

    async def org(self, name: str = "acme", region: Region = Region.US) -> tuple[Org, Seat]:
        org, owner = await self.container.identity.create_org(
            name=name, region=region, user_name=f"{name}-owner"
        )
        return org, await self.token(org.id, owner)

    async def token(self, org_id: OrgId, user_id: UserId, scopes: frozenset[Scope] = ALL_SCOPES) -> Seat:
        issued = await self.container.identity.issue_api_token(
            org_id=org_id, user_id=user_id, name="t", scopes=scopes
        )
        return Seat(org_id, user_id, issued.secret, issued.id)

    async def seat(self, org_id: OrgId, role: Role, name: str = "someone") -> Seat:
        """A new user joined to the org with `role`, and a token holding every scope (cut down to the role)."""
        _, user_id = await self.container.identity.create_org(
            name=f"{name}-home", region=Region.US, user_name=name
        )
        repo = self.container.identity._repo  # noqa: SLF001 - test setup writes a membership directly
        await repo.insert_member(org_id=org_id, user_id=user_id, role=role.value, at=self.clock.now())
        return await self.token(org_id, user_id)

    async def call(
        self, method: str, path: str, seat: Seat | str | None, body: Any = None, **kwargs: Any
    ) -> httpx.Response:
        secret = seat.token if isinstance(seat, Seat) else seat
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return await self.client.request(method, path, json=body, headers=headers, **kwargs)


@asynccontextmanager
async def running_app(tmp_path: Path, **settings: Any) -> AsyncIterator[Harness]:
    clock = FakeClock()
    values: dict[str, Any] = {"data_dir": tmp_path, "public_base_url": BASE_URL, **settings}
    ready: list[Container] = []
    app = create_app(Settings(**values), clock=clock, on_ready=ready.append)
    async with LifespanManager(app, startup_timeout=60) as manager:
        container = ready[0]
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url=BASE_URL
        ) as client:
            yield Harness(container, client, clock, app)
