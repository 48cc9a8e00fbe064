"""Where each surface's callers put their API token, and the router-level dependency that authenticates it.

OpenAI clients send `Authorization: Bearer …`, Anthropic clients `x-api-key: …`, fal clients
`Authorization: Key …`. All of them resolve through IdentityService.authenticate; scopes are checked per route
with `api.deps.require`, which reuses the principal stored here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from ferryman.api.deps import bearer_token, container_of
from ferryman.identity import Principal


def _scheme_value(request: Request, scheme: str) -> str | None:
    name, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if name.lower() == scheme else None


def openai_token(request: Request) -> str | None:
    return bearer_token(request)


def anthropic_token(request: Request) -> str | None:
    return request.headers.get("x-api-key") or bearer_token(request)


def fal_token(request: Request) -> str | None:
    return _scheme_value(request, "key") or bearer_token(request)


def authenticating(token_of: Callable[[Request], str | None]) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the token `token_of` finds; raises Unauthenticated."""

    async def authenticate(request: Request) -> Principal:
        principal = await container_of(request).identity.authenticate(
            token_of(request), ip=request.client.host if request.client else None
        )
        request.state.principal = principal
        return principal

    return authenticate
