"""Request dependencies, each declared once as an Annotated alias and used in route signatures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from ferryman.container import Container
from ferryman.errors import Forbidden
from ferryman.identity import Accounts, Principal, Scope
from ferryman.jobs import JobService

# Dependencies are `async def` even when they do not await: FastAPI runs a plain `def` dependency in a
# thread pool, a thread hop per request that showed up as 13% of the API's time in bench/ profiles.


def container_of(request: Request) -> Container:
    container: Container = request.state.container
    return container


async def get_container(request: Request) -> Container:
    return container_of(request)


async def get_jobs(request: Request) -> JobService:
    return container_of(request).jobs


async def get_accounts(request: Request) -> Accounts:
    return container_of(request).accounts


async def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


async def authenticate(request: Request) -> Principal:
    principal = await container_of(request).identity.authenticate(
        bearer_token(request), ip=request.client.host if request.client else None
    )
    request.state.principal = principal
    return principal


def require(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that passes only principals holding `scope`."""

    async def check(request: Request) -> Principal:
        principal: Principal = (
            request.state.principal if hasattr(request.state, "principal") else await authenticate(request)
        )
        if not principal.has(scope):
            raise Forbidden(f"this token lacks the {scope.value!r} scope")
        return principal

    check.required_scope = scope  # type: ignore[attr-defined]  # read by the route-walking isolation test
    return check


AppContainer = Annotated[Container, Depends(get_container)]
Jobs = Annotated[JobService, Depends(get_jobs)]
CurrentPrincipal = Annotated[Principal, Depends(authenticate)]
JobsWriter = Annotated[Principal, Depends(require(Scope.JOBS_WRITE))]
JobsReader = Annotated[Principal, Depends(require(Scope.JOBS_READ))]
OrgAdmin = Annotated[Principal, Depends(require(Scope.ORG_ADMIN))]
BillingReader = Annotated[Principal, Depends(require(Scope.BILLING_READ))]
AccountServices = Annotated[Accounts, Depends(get_accounts)]
ClientIp = Annotated[str | None, Depends(client_ip)]
