"""The one table from error class to HTTP status, and the native surface's error envelope."""

from __future__ import annotations

from typing import Any

import structlog
from starlette.responses import JSONResponse

from ferryman import errors, store

log = structlog.get_logger(__name__)


class MethodNotAllowed(errors.FerrymanError):
    """The path exists but not with this method. Only routing raises it, so it lives with the HTTP layer."""

    code = "method_not_allowed"


STATUS: dict[type[errors.FerrymanError], int] = {
    errors.InvalidRequest: 400,
    errors.InvalidJSON: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.InvalidTransition: 409,
    errors.Gone: 410,
    MethodNotAllowed: 405,
    errors.PayloadTooLarge: 413,
    errors.RateLimited: 429,
    errors.BacklogFull: 429,
    errors.FerrymanError: 500,
    errors.WorkerFailed: 502,
    errors.NoCapacity: 503,
    errors.StorageUnavailable: 503,
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


# what a client is told to wait after a store outage: the node retries outcomes at most this far apart
STORE_RETRY_AFTER_SECONDS = 2


def outage_of(exc: BaseException) -> errors.StorageUnavailable | None:
    """A store outage that reached a surface, as the 503 it means (not a bug, so no traceback); else None."""
    if not store.is_outage(exc):
        return None
    log.warning("request.store_unavailable", error=type(exc).__name__)
    return errors.StorageUnavailable(
        "the store is unavailable right now; try again in a few seconds",
        details={"retry_after_seconds": STORE_RETRY_AFTER_SECONDS},
    )


def retry_headers(error: errors.FerrymanError) -> dict[str, str]:
    """`Retry-After` for the errors that name a delay (rate limits, a full backlog, a store outage)."""
    if isinstance(error, errors.BacklogFull | errors.RateLimited | errors.StorageUnavailable):
        return {"Retry-After": str((error.details or {}).get("retry_after_seconds", 1))}
    return {}


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
    return JSONResponse(
        native_body(error.code, error.message, error.details),
        status_code=status_of(error),
        headers=retry_headers(error),
    )


def render_internal_error(exc: BaseException) -> JSONResponse:
    """Anything that is not a FerrymanError is a bug: log it whole, answer without leaking a thing."""
    log.error("request.failed", error=type(exc).__name__, exc_info=exc)
    return JSONResponse(native_body("internal_error", "internal error; it was logged"), status_code=500)
