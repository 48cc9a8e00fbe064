"""Connection limits uvicorn lacks: header size and count, a header deadline and a per-address connection cap.

uvicorn's httptools protocol buffers request headers without bound and never closes a connection that is still
sending them, so one client with a few slow connections can hold gigabytes (docs/adr/0004-connection-limits.md).
`guarded_protocol(limits)` returns a subclass of it that refuses, with `431`, a header block over
`max_header_bytes` or `max_headers` lines, closes with `408` a connection whose headers are not complete
`header_timeout_seconds` after it opened (or after its next request began), and answers `503` and closes a new
connection from an address that already holds `max_connections_per_address`. Idle keep-alive and the total number
of connections are uvicorn's own options (`timeout_keep_alive`, `limit_concurrency`); `ApiServer` sets them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout_seconds: float
    max_connections_per_address: int | None


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; httptools wraps it in HttpParserCallbackError."""


def _response(status: int, message: str) -> bytes:
    body = message.encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of `ConnectionLimits` (set by `guarded_protocol`)."""

    limits: ConnectionLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True
        self._began_in_feed = self._completed_in_feed = False
        self._unparsed_bytes = 0  # header bytes fed while the header block is incomplete (bounds the buffer)
        self._header_bytes = 0  # bytes of the complete header lines seen so far (exact)
        self._header_count = 0
        self._header_deadline: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cap = self.limits.max_connections_per_address
        if cap is not None and self.client is not None and self._connections_from(self.client[0]) > cap:
            self._refuse(503, f"more than {cap} open connections from your address; close some and retry")
            return
        self._arm_header_deadline()

    def _connections_from(self, address: str) -> int:
        # server_state.connections holds HTTP and WebSocket protocols alike (both carry `client`); a scan at
        # connection time is cheaper than keeping a counter that the upgrade to WebSocket would have to hand over
        return sum(1 for c in self.connections if (getattr(c, "client", None) or ("",))[0] == address)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return
        self._began_in_feed = self._completed_in_feed = False
        super().data_received(data)
        if self._refusal is None and self._in_headers and self.parser is not None:
            if not self._began_in_feed:
                self._unparsed_bytes += len(data)
            if self._unparsed_bytes > self.limits.max_header_bytes:
                self._refuse(431, f"request headers are larger than {self.limits.max_header_bytes} bytes")
            elif (
                self._header_deadline is None
                and not self._completed_in_feed
                and not self.transport.is_closing()
            ):
                self._arm_header_deadline()  # bytes between requests (even bare CRLFs) start the clock too

    # parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers, self._began_in_feed = True, True
        self._unparsed_bytes = self._header_bytes = self._header_count = 0
        if self._header_deadline is None:
            self._arm_header_deadline()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refusal = (431, f"more than {self.limits.max_headers} request header lines")
            raise _Refused
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm_header_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # whatever the client sends next is the next request's header block; the rest of this chunk was body
        self._in_headers, self._began_in_feed, self._completed_in_feed = True, True, True
        self._unparsed_bytes = 0

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:  # a callback of ours stopped the parser
            status, message = self._refusal
            self._refusal = None
            self._refuse(status, message)
            return
        super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            self._refusal = (431, f"request headers are larger than {self.limits.max_header_bytes} bytes")
            raise _Refused

    def _refuse(self, status: int, message: str) -> None:
        self._refusal = (status, message)
        self._disarm_header_deadline()
        if not self.transport.is_closing():
            self.transport.write(_response(status, message))
            self.transport.close()

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(
            self.limits.header_timeout_seconds, self._header_timed_out
        )

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_timed_out(self) -> None:
        self._header_deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_header_deadline()  # a pipelined request waits for the response before this one; not slow
        elif self._in_headers:
            self._refuse(408, f"request headers not received within {self.limits.header_timeout_seconds:g} s")


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class bound to `limits`, for `uvicorn.Config(http=…)` (uvicorn instantiates it per connection)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
