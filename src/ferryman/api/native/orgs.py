"""`/v1/orgs…`: the user's orgs; create, read, rename, billing address, data region, ownership transfer."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from ferryman.api.deps import AccountServices, ClientIp, CurrentPrincipal, OrgAdmin
from ferryman.api.native.identity_schemas import (
    OrgCreate,
    OrgUpdate,
    OwnershipTransfer,
    member_view,
    membership_view,
    org_view,
    page,
)
from ferryman.identity import Scope

router = APIRouter()


@router.get("/orgs")
async def list_orgs(principal: CurrentPrincipal, accounts: AccountServices) -> JSONResponse:
    return JSONResponse(
        page([membership_view(m) for m in await accounts.orgs.memberships(principal.user_id)])
    )


@router.post("/orgs", status_code=201)
async def create_org(
    body: OrgCreate, principal: OrgAdmin, accounts: AccountServices, ip: ClientIp
) -> JSONResponse:
    org = await accounts.orgs.create(principal.user_id, name=body.name, region=body.region, ip=ip)
    return JSONResponse({**org_view(org, show_billing=True), "role": "owner"}, status_code=201)


@router.get("/orgs/{org_id}")
async def get_org(org_id: str, principal: CurrentPrincipal, accounts: AccountServices) -> JSONResponse:
    org = await accounts.orgs.get(principal, org_id)
    return JSONResponse(org_view(org, show_billing=principal.has(Scope.BILLING_READ)))


@router.patch("/orgs/{org_id}")
async def update_org(
    org_id: str, body: OrgUpdate, principal: CurrentPrincipal, accounts: AccountServices, ip: ClientIp
) -> JSONResponse:
    org = await accounts.orgs.update(
        principal, org_id, name=body.name, billing_address=body.billing_address, region=body.region, ip=ip
    )
    return JSONResponse(org_view(org, show_billing=principal.has(Scope.BILLING_READ)))


@router.post("/orgs/{org_id}/transfer-ownership")
async def transfer_ownership(
    org_id: str, body: OwnershipTransfer, principal: OrgAdmin, accounts: AccountServices, ip: ClientIp
) -> JSONResponse:
    members = await accounts.orgs.transfer_ownership(principal, org_id, body.user_id, ip=ip)
    return JSONResponse(page([member_view(m) for m in members]))
