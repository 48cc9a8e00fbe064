"""Building a translating surface's FastAPI sub-app: its routers behind its own authentication, and every error
(ours, validation, HTTP, unexpected) rendered by the surface's own `render_error`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from ferryman import errors
from ferryman.api.body_limit import BodySizeLimit
from ferryman.api.edge import RefuseNul, RenderUnexpected, allowed_methods
from ferryman.api.errors import MethodNotAllowed, outage_of
from ferryman.api.openapi import document_errors
from ferryman.api.parsing import describe
from ferryman.api.signed_urls import UrlSigner

log = structlog.get_logger(__name__)

RenderError = Callable[[errors.FerrymanError], Response]

HTTP_ERRORS: dict[int, type[errors.FerrymanError]] = {
    400: errors.InvalidRequest,
    401: errors.Unauthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: MethodNotAllowed,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    429: errors.RateLimited,
}


def as_ferryman_error(exc: Exception) -> errors.FerrymanError | None:
    """Validation and routing errors as the FerrymanError they mean; None for a bug."""
    if isinstance(exc, errors.FerrymanError):
        return exc
    if isinstance(exc, RequestValidationError):
        problems = describe(exc)  # type: ignore[arg-type]
        first = problems[0] if problems else {"loc": [], "message": "invalid request"}
        where = ".".join(p for p in first["loc"] if p != "body") or "body"
        if any(p["type"] == "json_invalid" for p in problems):
            return errors.InvalidJSON("request body is not valid JSON")
        return errors.InvalidRequest(f"{where}: {first['message']}", details={"errors": problems})
    if isinstance(exc, HTTPException):
        cls = HTTP_ERRORS.get(exc.status_code, errors.FerrymanError)
        return cls(str(exc.detail))
    return outage_of(exc)


def create_surface_app(
    *,
    title: str,
    routers: Sequence[APIRouter],
    render_error: RenderError,
    error_schema: dict[str, Any],
    authenticate: Callable[[Request], Awaitable[Any]],
    signer: UrlSigner,
    max_body_bytes: int,
) -> FastAPI:
    app = FastAPI(
        title=title, version="1", docs_url=None, redoc_url=None, dependencies=[Depends(authenticate)]
    )
    app.state.signer = signer
    document_errors(app, error_schema=error_schema)
    for router in routers:
        app.include_router(router)

    def render_any(exc: Exception) -> Response:
        known = as_ferryman_error(exc)
        if known is None:  # anything else is a bug: log it whole, answer without leaking a thing
            log.error("request.failed", error=type(exc).__name__, exc_info=exc)
            return render_error(errors.FerrymanError("internal error; it was logged"))
        return render_error(known)

    async def on_error(request: Request, exc: Exception) -> Response:
        response = render_any(exc)
        response.headers.update(getattr(request.state, "answer_headers", None) or {})  # timing.run_timed
        if response.status_code == 405:
            response.headers["Allow"] = allowed_methods(request)
        return response

    for exc_class in (errors.FerrymanError, RequestValidationError, HTTPException):
        app.add_exception_handler(exc_class, on_error)
    # innermost first: NUL refusal sees bodies the size limit has bounded; RenderUnexpected is outermost
    app.add_middleware(RefuseNul, render=render_error)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes, render=render_error)
    app.add_middleware(RenderUnexpected, render=render_any)
    return app
