"""`/v1/tokens…`: create (shown once), list, revoke API tokens; mint short-lived tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import JSONResponse

from ferryman.api.deps import AccountServices, ClientIp, CurrentPrincipal
from ferryman.api.native.identity_schemas import ShortLivedCreate, TokenCreate, page, token_view
from ferryman.errors import Forbidden

router = APIRouter()


@router.post("/tokens", status_code=201)
async def create_token(
    body: TokenCreate, principal: CurrentPrincipal, accounts: AccountServices, ip: ClientIp
) -> JSONResponse:
    issued, info = await accounts.identity.create_token(
        principal, name=body.name, scopes=body.requested_scopes(), expires_in_days=body.expires_in_days, ip=ip
    )
    return JSONResponse({**token_view(info), "secret": issued.secret}, status_code=201)


@router.get("/tokens")
async def list_tokens(
    principal: CurrentPrincipal,
    accounts: AccountServices,
    all: Annotated[bool, Query(description="every member's tokens (org:admin)")] = False,
) -> JSONResponse:
    return JSONResponse(
        page([token_view(t) for t in await accounts.identity.find_tokens(principal, whole_org=all)])
    )


@router.delete("/tokens/{token_id}")
async def revoke_token(
    token_id: str, principal: CurrentPrincipal, accounts: AccountServices, ip: ClientIp
) -> JSONResponse:
    return JSONResponse(token_view(await accounts.identity.revoke_token(principal, token_id, ip=ip)))


@router.post("/tokens/short-lived", status_code=201)
async def mint_short_lived(
    body: ShortLivedCreate, principal: CurrentPrincipal, accounts: AccountServices, ip: ClientIp
) -> JSONResponse:
    if principal.short_lived:
        raise Forbidden("a short-lived token cannot mint another; use an API token or a browser session")
    scopes = frozenset(body.scopes) if body.scopes is not None else principal.scopes
    if excess := sorted(s.value for s in scopes - principal.scopes):
        raise Forbidden(
            f"the calling token lacks {excess}, so it cannot grant them", details={"scopes": excess}
        )
    minted = await accounts.identity.mint_short_lived(
        parent=principal.token_id,
        user_id=principal.user_id,
        org_id=principal.org_id,
        scopes=scopes,
        ttl_seconds=body.ttl_seconds,
        ip=ip,
    )
    return JSONResponse(
        {
            "object": "short_lived_token",
            "secret": minted.secret,
            "org_id": principal.org_id,
            "scopes": sorted(minted.scopes),
            "expires_at": minted.expires_at,
        },
        status_code=201,
    )
