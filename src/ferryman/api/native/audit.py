"""`/v1/audit`: the org's audit log, newest first, for Admins and Owners (org:admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import JSONResponse

from ferryman.api.deps import AccountServices, OrgAdmin
from ferryman.api.native.identity_schemas import audit_view

router = APIRouter()


@router.get("/audit")
async def list_audit(
    principal: OrgAdmin,
    accounts: AccountServices,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    before: Annotated[str | None, Query(max_length=40)] = None,
) -> JSONResponse:
    events = await accounts.audit.find_page(principal.org_id, before=before, limit=limit)
    return JSONResponse(
        {
            "object": "list",
            "data": [audit_view(e) for e in events],
            "next_before": events[-1].id if len(events) == limit else None,
        }
    )
