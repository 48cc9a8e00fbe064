"""The native surface as its own FastAPI app, with its error envelope and authentication on every route."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from ferryman.api.body_limit import BodySizeLimit
from ferryman.api.deps import authenticate
from ferryman.api.edge import RefuseNul, RenderUnexpected, allowed_methods
from ferryman.api.errors import HTTP_CODES, native_body, outage_of, render_internal_error, render_native_error
from ferryman.api.native import (
    audit,
    fleet,
    invitations,
    jobs,
    me,
    members,
    models,
    org,
    orgs,
    sessions,
    tokens,
)
from ferryman.api.native.schemas import ERROR_SCHEMA, JOB_LIST_SCHEMA, JOB_SCHEMA, JobCreate
from ferryman.api.openapi import document_errors
from ferryman.errors import FerrymanError


async def _on_ferryman_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, FerrymanError)
    return render_native_error(exc)


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"loc": [str(p) for p in e["loc"]], "message": e["msg"], "type": e["type"]} for e in exc.errors()
    ]
    first = problems[0] if problems else {"loc": [], "message": "invalid request"}
    return JSONResponse(
        native_body(
            "validation_error", f"{'.'.join(first['loc'])}: {first['message']}", {"errors": problems}
        ),
        status_code=400,
    )


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "internal_error")
    headers = {"Allow": allowed_methods(request)} if exc.status_code == 405 else None
    return JSONResponse(native_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers)


def _render_unexpected(exc: Exception) -> Response:
    """What escaped every handler: a FerrymanError raised outside a route, or a bug."""
    if isinstance(exc, FerrymanError):
        return render_native_error(exc)
    if (outage := outage_of(exc)) is not None:
        return render_native_error(outage)
    return render_internal_error(exc)


def create_native_app(*, max_body_bytes: int) -> FastAPI:
    app = FastAPI(
        title="Ferryman native API",
        version="1",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(authenticate)],
    )
    document_errors(
        app,
        error_schema=ERROR_SCHEMA,
        models=[JobCreate],
        schemas={"Job": JOB_SCHEMA, "JobList": JOB_LIST_SCHEMA},
    )
    app.include_router(jobs.router)
    app.include_router(models.router)
    app.include_router(org.router)
    app.include_router(fleet.router)
    for router in (
        me.router,
        orgs.router,
        members.router,
        invitations.router,
        tokens.router,
        sessions.router,
        audit.router,
    ):
        app.include_router(router)
    app.add_exception_handler(FerrymanError, _on_ferryman_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    # innermost first: NUL refusal sees bodies the size limit has bounded; RenderUnexpected is outermost
    app.add_middleware(RefuseNul, render=render_native_error)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes, render=render_native_error)
    app.add_middleware(RenderUnexpected, render=_render_unexpected)
    return app
