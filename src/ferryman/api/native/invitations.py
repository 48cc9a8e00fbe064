"""`/v1/orgs/{org_id}/invitations…` (create, list, revoke) and `/v1/invitations/accept`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from ferryman.api.deps import AccountServices, ClientIp, CurrentPrincipal, OrgAdmin
from ferryman.api.native.identity_schemas import InvitationAccept, InvitationCreate, invitation_view, page

router = APIRouter()


@router.post("/orgs/{org_id}/invitations", status_code=201)
async def create_invitation(
    org_id: str, body: InvitationCreate, principal: OrgAdmin, accounts: AccountServices, ip: ClientIp
) -> JSONResponse:
    issued = await accounts.invitations.create(
        principal, org_id, role=body.role, email=body.email, max_uses=body.max_uses, ip=ip
    )
    return JSONResponse(
        {
            **invitation_view(issued.invitation),
            "token": issued.secret,
            "url": accounts.invitations.link(issued.secret),
            "email_sent": issued.email_sent,
        },
        status_code=201,
    )


@router.get("/orgs/{org_id}/invitations")
async def list_invitations(org_id: str, principal: OrgAdmin, accounts: AccountServices) -> JSONResponse:
    return JSONResponse(
        page([invitation_view(i) for i in await accounts.invitations.find(principal, org_id)])
    )


@router.delete("/orgs/{org_id}/invitations/{invitation_id}")
async def revoke_invitation(
    org_id: str, invitation_id: str, principal: OrgAdmin, accounts: AccountServices, ip: ClientIp
) -> JSONResponse:
    return JSONResponse(
        invitation_view(await accounts.invitations.revoke(principal, org_id, invitation_id, ip=ip))
    )


@router.post("/invitations/accept")
async def accept_invitation(
    body: InvitationAccept, principal: CurrentPrincipal, accounts: AccountServices, ip: ClientIp
) -> JSONResponse:
    """The token's user joins the invitation's org (the token itself stays bound to its own org)."""
    invitation = await accounts.invitations.accept(body.token, principal.user_id, ip=ip)
    return JSONResponse(invitation_view(invitation))
