"""The caller's organization, including the secret its webhooks are signed with (admins only)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from ferryman.api.deps import AppContainer, OrgAdmin
from ferryman.errors import NotFound

router = APIRouter()


@router.get("/org")
async def get_org(principal: OrgAdmin, container: AppContainer) -> JSONResponse:
    org = await container.identity.get_org(principal.org_id)
    if org is None:
        raise NotFound("organization not found")
    return JSONResponse(
        {
            "id": org.id,
            "object": "org",
            "name": org.name,
            "region": org.region.value,
            "webhook_secret": org.webhook_secret,
        }
    )
