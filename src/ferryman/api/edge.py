"""Guards each surface puts around its routes, so bad input and bugs end in a clean answer on a usable connection.

- `RefuseNul`: a NUL character cannot be stored in a PostgreSQL text column (asyncpg raises, the request became a
  500), and nothing a client means to say needs one; it is refused with a 400 in the surface's format wherever
  it can arrive: the path (raw or `%00`), the query string, a header value, or a body (a raw 0x00 byte or the
  JSON escape `\\u0000`).
- `RenderUnexpected`: Starlette's outermost ServerErrorMiddleware answers an unhandled exception with a 500 and
  then re-raises it; uvicorn, seeing an exception after the response, closes the connection without a
  `Connection: close`, so the client's next request on that keep-alive connection was reset. This middleware sits
  inside it, answers and logs, and lets an exception through only when a response had started and cannot be
  finished (a stream broken mid-way).
- `allowed_methods`: the `Allow` header of a 405, from every route of the app that matches the path.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferryman.errors import InvalidRequest

log = structlog.get_logger(__name__)

RenderRefusal = Callable[[InvalidRequest], Response]
RenderException = Callable[[Exception], Response]

NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def nul_refusal(where: str) -> InvalidRequest:
    return InvalidRequest(
        f"the request's {where} contains a NUL character (a 0x00 byte, %00 or \\u0000); remove it",
        details={"code": "nul_character", "param": where},
    )


def has_json_nul_escape(body: bytes) -> bool:
    """True when `body` holds the JSON escape `\\u0000` itself, not an escaped backslash followed by `u0000`:
    the escape is preceded by an odd number of backslashes. Only JSON strings hold backslashes, so this is exact
    for valid JSON without parsing it."""
    at = body.find(b"\\u0000")
    while at != -1:
        start = at
        while start > 0 and body[start - 1] == 0x5C:  # backslash
            start -= 1
        if (at - start) % 2 == 0:  # the backslash of `\u` is itself unescaped
            return True
        at = body.find(b"\\u0000", at + 1)
    return False


def nul_in_head(scope: Scope) -> str | None:
    """Where in the request line or headers a NUL is, or None."""
    if "\x00" in scope.get("path", "") or b"%00" in scope.get("raw_path", b""):
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"\x00" in query or b"%00" in query:
        return "query string"
    for name, value in scope.get("headers", []):
        if b"\x00" in value:
            return f"{name.decode('latin-1')} header"
    return None


def _content_type(scope: Scope) -> bytes:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return bytes(value).lower()
    return b""


class RefuseNul:
    """Refuse a request with a NUL anywhere a client can put text, before any route sees it. A body is read
    whole (the BodySizeLimit outside this one bounds it) and replayed to the app; multipart bodies carry
    binary files, so their text fields are checked by the route's own validation instead."""

    def __init__(self, app: ASGIApp, *, render: RenderRefusal) -> None:
        self.app, self.render = app, render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = nul_in_head(scope)
        if where is not None:
            await self.render(nul_refusal(where))(scope, receive, send)
            return
        if scope["method"] in NO_BODY_METHODS or _content_type(scope).startswith(b"multipart/"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if b"\x00" in body or has_json_nul_escape(body):
            await self.render(nul_refusal("body"))(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RenderUnexpected:
    """Answer an exception that escaped the app's handlers with `render(exc)`, so it never reaches uvicorn."""

    def __init__(self, app: ASGIApp, *, render: RenderException) -> None:
        self.app, self.render = app, render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if finished:  # the client has its whole answer; keep the connection, keep the evidence
                log.error("request.failed_after_response", error=type(exc).__name__, exc_info=exc)
                return
            if started:  # half a response cannot be finished: let the server drop the connection
                raise
            await self.render(exc)(scope, receive, send)


def allowed_methods(request: Request) -> str:
    """Every method the app routes for this path: the value of a 405's `Allow` header. Each method is asked of
    the router itself (FastAPI nests included routers, so walking routes for their `methods` misses them)."""
    routes: list[BaseRoute] = request.app.router.routes
    allowed = [
        method
        for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return ", ".join(allowed)
