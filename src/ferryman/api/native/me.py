"""`/v1/me`: who the token belongs to, the token itself, and the user's orgs."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from ferryman.api.deps import AccountServices, CurrentPrincipal
from ferryman.api.native.identity_schemas import membership_view
from ferryman.errors import NotFound

router = APIRouter()


@router.get("/me")
async def get_me(principal: CurrentPrincipal, accounts: AccountServices) -> JSONResponse:
    user = await accounts.signin.get_user(principal.user_id)
    if user is None:
        raise NotFound("user not found")
    return JSONResponse(
        {
            "id": user.id,
            "object": "user",
            "name": user.name,
            "email": user.email,
            "providers": await accounts.signin.providers(user.id),
            "token": {
                "id": principal.token_id,
                "org_id": principal.org_id,
                "role": principal.role.value,
                "scopes": sorted(principal.scopes),
                "short_lived": principal.short_lived,
            },
            "orgs": [membership_view(m) for m in await accounts.orgs.memberships(user.id)],
        }
    )
