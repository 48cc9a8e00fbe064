"""The one error hierarchy every domain raises; each surface renders it in its own format.

    FerrymanError
     ├── InvalidRequest        400 validation_error
     │    └── InvalidJSON      400 invalid_json
     ├── Unauthenticated       401 unauthorized
     ├── Forbidden             403 forbidden
     ├── NotFound              404 not_found
     ├── Conflict              409 conflict
     │    └── InvalidTransition
     ├── Gone                  410 gone
     ├── PayloadTooLarge       413 payload_too_large
     ├── RateLimited           429 rate_limit
     ├── BacklogFull           429 backlog_full
     ├── WorkerFailed          502 worker_error
     ├── NoCapacity            503 no_capacity
     ├── StorageUnavailable    503 storage_unavailable
     ├── Timeout               504 timeout
     └── ConfigError           (start-up only; never reaches a surface)

`retryable` tells clients (and the SDKs' retry logic, through the status) whether trying again may help.
"""

from __future__ import annotations

from typing import Any


class FerrymanError(Exception):
    code = "internal_error"
    retryable = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(FerrymanError):
    code = "validation_error"


class InvalidJSON(InvalidRequest):
    code = "invalid_json"


class Unauthenticated(FerrymanError):
    code = "unauthorized"


class Forbidden(FerrymanError):
    code = "forbidden"


class NotFound(FerrymanError):
    code = "not_found"


class Conflict(FerrymanError):
    code = "conflict"


class InvalidTransition(Conflict):
    """A job was asked to move between two states the lifecycle does not connect."""


class Gone(FerrymanError):
    code = "gone"


class PayloadTooLarge(FerrymanError):
    code = "payload_too_large"


class RateLimited(FerrymanError):
    code = "rate_limit"
    retryable = True


class BacklogFull(FerrymanError):
    code = "backlog_full"
    retryable = True


class WorkerFailed(FerrymanError):
    code = "worker_error"


class NoCapacity(FerrymanError):
    code = "no_capacity"
    retryable = True


class StorageUnavailable(FerrymanError):
    """The store could not be reached or dropped the connection: nothing was recorded; try again shortly."""

    code = "storage_unavailable"
    retryable = True


class Timeout(FerrymanError):
    code = "timeout"
    retryable = True


class ConfigError(FerrymanError):
    code = "config_error"


ALL_ERRORS: tuple[type[FerrymanError], ...] = (
    FerrymanError,
    InvalidRequest,
    InvalidJSON,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    Gone,
    PayloadTooLarge,
    RateLimited,
    BacklogFull,
    WorkerFailed,
    NoCapacity,
    StorageUnavailable,
    Timeout,
)
