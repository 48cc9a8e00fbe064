"""Telling a store outage (try again later) from a write the store will never take (the statement is wrong).

The difference decides what happens next: an outcome refused during an outage is retried until it commits and
a request that needed the store is answered `503 storage_unavailable` with `Retry-After`; a write refused for
what it holds is not retried as it is. Drivers disagree on how they say "unreachable": asyncpg raises
`ConnectionRefusedError` raw while connecting, a wrapped error without a statement when connecting fails
otherwise ("not accepting connections"), and one with `connection_invalidated` when the server drops a
connection in use; SQLite says `OperationalError` (locked, disk full). PostgreSQL's SQLSTATE classes name the
rest.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

# 08 connection exception, 53 insufficient resources, 57P01-3 shutdown / cannot connect now,
# 40001 / 40P01 serialization failure and deadlock (the same write may pass next time)
_TRANSIENT_SQLSTATES = ("08", "53", "57P", "40001", "40P01")
# asyncpg's own connection errors carry no SQLSTATE
_TRANSIENT_DRIVER_ERRORS = frozenset({"ConnectionDoesNotExistError", "ConnectionFailureError"})


def _sqlstate(error: BaseException | None) -> str | None:
    seen = 0
    while error is not None and seen < 4:
        state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(state, str):
            return state
        error, seen = error.__cause__, seen + 1
    return None


def is_outage(error: BaseException) -> bool:
    """True when `error` says the store could not be reached or lost the connection, not that the write is bad."""
    if isinstance(error, OSError | TimeoutError | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        # no statement: it failed while connecting (refused, "not accepting connections", starting up)
        if (
            error.connection_invalidated
            or error.statement is None
            or isinstance(error, sa_exc.OperationalError)
        ):
            return True
        cause = error.orig.__cause__ if error.orig is not None else None
        if cause is not None and type(cause).__name__ in _TRANSIENT_DRIVER_ERRORS:
            return True
        state = _sqlstate(error.orig)
    else:
        if type(error).__name__ in _TRANSIENT_DRIVER_ERRORS:
            return True
        state = _sqlstate(error)
    return state is not None and state.startswith(_TRANSIENT_SQLSTATES)
