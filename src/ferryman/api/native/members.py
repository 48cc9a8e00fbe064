"""`/v1/orgs/{org_id}/members…`: list members and change roles (Disabled included)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from ferryman.api.deps import AccountServices, ClientIp, OrgAdmin
from ferryman.api.native.identity_schemas import RoleUpdate, member_view, page

router = APIRouter()


@router.get("/orgs/{org_id}/members")
async def list_members(org_id: str, principal: OrgAdmin, accounts: AccountServices) -> JSONResponse:
    return JSONResponse(page([member_view(m) for m in await accounts.orgs.members(principal, org_id)]))


@router.patch("/orgs/{org_id}/members/{user_id}")
async def set_role(
    org_id: str, user_id: str, body: RoleUpdate, principal: OrgAdmin, accounts: AccountServices, ip: ClientIp
) -> JSONResponse:
    member = await accounts.orgs.set_role(principal, org_id, user_id, body.role, ip=ip)
    return JSONResponse(member_view(member))
