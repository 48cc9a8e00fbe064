"""The fake OpenAI-compatible upstream every path in the benchmark ends at: instant answers, paced streams.

    python bench/upstream.py PORT [--stream-tokens 200] [--token-interval-ms 10]

A bare ASGI callable under uvicorn (httptools, uvloop): no framework, so the baseline is about the cheapest a
Python HTTP server gets, and a gateway's cost is not hidden behind a slow upstream. Each streamed token carries
its index as `~T<i>~`, so a client can tell, whatever JSON the gateway wraps it in, which tokens arrived and when.
Tokens are scheduled against the stream's start (not slept one after another), so the pace does not drift.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def token(index: int) -> str:
    """The text of streamed token `index`: a marker that survives any JSON re-encoding unchanged."""
    return f"~T{index}~"


def completion(model: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
    ).encode()


def _chunk(
    model: str, delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None
) -> bytes:
    event: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        event["usage"] = usage
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


class FakeUpstream:
    """`POST /v1/chat/completions` (plain or `"stream": true`), `GET /v1/models`, `GET /healthz`."""

    def __init__(self, *, stream_tokens: int = 200, token_interval_ms: float = 10.0) -> None:
        self.stream_tokens, self.token_interval_s = stream_tokens, token_interval_ms / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] == "POST" and path.endswith("/chat/completions"):
            body = bytearray()
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            request = json.loads(body)
            model = str(request.get("model", "fake-model"))
            if request.get("stream"):
                await self._stream(model, send)
            else:
                await self._send(send, 200, JSON_HEADERS, completion(model))
        elif path.endswith("/models"):
            await self._send(
                send, 200, JSON_HEADERS, b'{"object":"list","data":[{"id":"fake-model","object":"model"}]}'
            )
        elif path == "/healthz":
            await self._send(send, 200, JSON_HEADERS, b"{}")
        else:
            await self._send(send, 404, JSON_HEADERS, b'{"error":{"message":"not found"}}')

    @staticmethod
    async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, model: str, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        started = time.perf_counter()
        await send(
            {
                "type": "http.response.body",
                "body": _chunk(model, {"role": "assistant", "content": ""}),
                "more_body": True,
            }
        )
        for index in range(self.stream_tokens):
            delay = started + index * self.token_interval_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(
                {
                    "type": "http.response.body",
                    "body": _chunk(model, {"content": token(index)}),
                    "more_body": True,
                }
            )
        usage = {
            "prompt_tokens": 3,
            "completion_tokens": self.stream_tokens,
            "total_tokens": self.stream_tokens + 3,
        }
        tail = _chunk(model, {}, finish="stop", usage=usage) + b"data: [DONE]\n\n"
        await send({"type": "http.response.body", "body": tail})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("port", type=int)
    parser.add_argument("--stream-tokens", type=int, default=200)
    parser.add_argument("--token-interval-ms", type=float, default=10.0)
    args = parser.parse_args()
    app = FakeUpstream(stream_tokens=args.stream_tokens, token_interval_ms=args.token_interval_ms)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="off",
    )


if __name__ == "__main__":
    main()
