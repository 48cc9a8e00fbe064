"""`/v1/sessions…`: the calling user's browser sessions; end one, or sign out everywhere."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from ferryman.api.deps import AccountServices, CurrentPrincipal
from ferryman.api.native.identity_schemas import page, session_view

router = APIRouter()


@router.get("/sessions")
async def list_sessions(principal: CurrentPrincipal, accounts: AccountServices) -> JSONResponse:
    return JSONResponse(page([session_view(s) for s in await accounts.sessions.find(principal.user_id)]))


@router.delete("/sessions/{session_id}")
async def revoke_session(
    session_id: str, principal: CurrentPrincipal, accounts: AccountServices
) -> JSONResponse:
    await accounts.sessions.revoke(principal.user_id, session_id)
    return JSONResponse({"id": session_id, "object": "session", "revoked": True})


@router.post("/sessions/revoke-all")
async def revoke_all_sessions(principal: CurrentPrincipal, accounts: AccountServices) -> JSONResponse:
    return JSONResponse(
        {"object": "sessions_revoked", "count": await accounts.sessions.revoke_all(principal.user_id)}
    )
