"""The one table from error class to HTTP status, and the native surface's error envelope."""

from __future__ import annotations

from typing import Any

import structlog
from starlette.responses import JSONResponse

from ferryman import errors

log = structlog.get_logger(__name__)

STATUS: dict[type[errors.FerrymanError], int] = {
    errors.InvalidRequest: 400,
    errors.InvalidJSON: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.InvalidTransition: 409,
    errors.Gone: 410,
    errors.PayloadTooLarge: 413,
    errors.RateLimited: 429,
    errors.BacklogFull: 429,
    errors.FerrymanError: 500,
    errors.WorkerFailed: 502,
    errors.NoCapacity: 503,
    errors.Timeout: 504,
}

HTTP_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limit",
}


def status_of(error: errors.FerrymanError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def native_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def render_native_error(error: errors.FerrymanError) -> JSONResponse:
    headers = {}
    if isinstance(error, errors.BacklogFull | errors.RateLimited):
        headers["Retry-After"] = str((error.details or {}).get("retry_after_seconds", 1))
    return JSONResponse(
        native_body(error.code, error.message, error.details), status_code=status_of(error), headers=headers
    )


def render_internal_error(exc: BaseException) -> JSONResponse:
    """Anything that is not a FerrymanError is a bug: log it whole, answer without leaking a thing."""
    log.error("request.failed", error=type(exc).__name__, exc_info=exc)
    return JSONResponse(native_body("internal_error", "internal error; it was logged"), status_code=500)
