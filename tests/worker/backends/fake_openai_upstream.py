"""A test double of an OpenAI-compatible server (what vLLM, SGLang or llama.cpp server expose), for the
`openai-upstream` backend's tests. Not an inference engine: it answers deterministically from the request.

Behaviour is chosen by model name, so one server covers every case:
- `fake-model`: answers like vLLM (usage in a separate last chunk when `stream_options.include_usage`);
- `fake-usage-last-chunk`: like llama.cpp server, ignores `stream_options` and puts usage on the finish chunk;
- `fake-500`: answers 500; `fake-slow`: sleeps 0.5 s before answering;
- `fake-stream-error`: streams a piece then an `{"error"}` event; `fake-stream-cut`: a piece, then hangs up.
A request without `messages` / `prompt` gets OpenAI's 400 shape. Every request is recorded in `requests`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

API_KEY = "sk-fake-upstream"
TOOL_ARGUMENTS = '{"city": "Paris"}'


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    client_port: int


@dataclass
class FakeUpstream:
    url: str
    requests: list[Recorded] = field(default_factory=list)

    def last(self, path: str) -> Recorded:
        return next(r for r in reversed(self.requests) if r.path == path)


def tiny_png(width: int, height: int) -> bytes:
    """A valid black PNG, so the backend's size sniffing reads real headers."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": status}}, status
    )


def _usage(prompt: str, reply: str) -> dict[str, int]:
    p, c = len(prompt.split()), len(reply.split())
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        return " ".join(str(m.get("content") or "") for m in body["messages"])
    return str(body.get("prompt", ""))


def _reply(body: dict[str, Any]) -> tuple[list[str], str]:
    """The answer's words (`echo:` then the last message's words, cut at max_tokens) and the finish reason."""
    last = str(body["messages"][-1].get("content") or "") if "messages" in body else str(body["prompt"])
    words = ["echo:", *last.split()]
    limit = body.get("max_tokens")
    if isinstance(limit, int) and limit < len(words):
        return words[:limit], "length"
    return words, "stop"


def _tool_call(body: dict[str, Any]) -> dict[str, Any]:
    name = body["tools"][0]["function"]["name"]
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": TOOL_ARGUMENTS}}


async def _text(request: Request, recorded: Recorded) -> Response:
    body = recorded.body
    is_chat = request.url.path.endswith("chat/completions")
    if ("messages" if is_chat else "prompt") not in body:
        return _error(400, f"'{'messages' if is_chat else 'prompt'}' is a required property")
    if body.get("model") == "fake-500":
        return _error(500, "the engine fell over")
    if body.get("model") == "fake-slow":
        await asyncio.sleep(0.5)
    if body.get("stream"):
        return StreamingResponse(_stream(body, is_chat), media_type="text/event-stream")
    words, finish = _reply(body)
    reply = " ".join(words)
    if is_chat and body.get("tools"):
        message = {"role": "assistant", "content": None, "tool_calls": [_tool_call(body)]}
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "tool_calls"}
        reply = TOOL_ARGUMENTS
    elif is_chat:
        message = {"role": "assistant", "content": reply}
        choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    else:
        choice = {"index": 0, "text": reply, "finish_reason": finish, "logprobs": None}
    kind = "chat.completion" if is_chat else "text_completion"
    usage = _usage(_prompt_text(body), reply)
    return JSONResponse(
        {"id": "x-1", "object": kind, "model": body["model"], "choices": [choice], "usage": usage}
    )


def _stream_pieces(body: dict[str, Any], is_chat: bool) -> tuple[list[dict[str, Any]], str, str]:
    """Each streamed choice, the finish reason, and the text the usage is counted on."""
    if is_chat and body.get("tools"):
        call = _tool_call(body)
        first = {
            "index": 0,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        rest = [
            {"index": 0, "function": {"arguments": TOOL_ARGUMENTS[i : i + 5]}}
            for i in range(0, len(TOOL_ARGUMENTS), 5)
        ]
        return [{"delta": {"tool_calls": [d]}} for d in (first, *rest)], "tool_calls", TOOL_ARGUMENTS
    words, finish = _reply(body)
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    key = "delta" if is_chat else "text"
    return [{key: {"content": p}} if is_chat else {key: p} for p in pieces], finish, " ".join(words)


async def _stream(body: dict[str, Any], is_chat: bool) -> AsyncIterator[bytes]:
    model = body["model"]
    choices, finish, reply = _stream_pieces(body, is_chat)
    usage = _usage(_prompt_text(body), reply)

    def event(choice_list: list[dict[str, Any]], **extra: Any) -> bytes:
        return (
            f"data: {json.dumps({'id': 'x-1', 'model': model, 'choices': choice_list, **extra})}\n\n".encode()
        )

    yield b": keep-alive comment\n\n"
    for i, choice in enumerate(choices):
        yield event([{"index": 0, **choice, "finish_reason": None}])
        if i == 0 and model == "fake-stream-error":
            yield b'data: {"error": {"message": "the engine fell over", "code": 500}}\n\n'
            return
        if i == 0 and model == "fake-stream-cut":
            return
    finish_choice = [
        {"index": 0, "delta": {}, "finish_reason": finish}
        if is_chat
        else {"index": 0, "text": "", "finish_reason": finish}
    ]
    if model == "fake-usage-last-chunk":
        yield event(finish_choice, usage=usage)
    else:
        yield event(finish_choice)
        if (body.get("stream_options") or {}).get("include_usage"):
            yield event([], usage=usage)
    yield b"data: [DONE]\n\n"


async def _embeddings(request: Request, recorded: Recorded) -> Response:
    body = recorded.body
    texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
    size = body.get("dimensions") or 4
    data = [
        {"object": "embedding", "index": i, "embedding": [float(len(t))] * size} for i, t in enumerate(texts)
    ]
    tokens = sum(len(t.split()) for t in texts)
    return JSONResponse(
        {"object": "list", "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    )


async def _images(request: Request, recorded: Recorded) -> Response:
    body = recorded.body
    width, height = (int(v) for v in body.get("size", "8x8").split("x"))
    image = base64.b64encode(tiny_png(width, height)).decode()
    return JSONResponse({"created": 0, "data": [{"b64_json": image} for _ in range(body.get("n", 1))]})


async def _speech(request: Request, recorded: Recorded) -> Response:
    body = recorded.body
    if not body.get("voice"):
        return _error(400, "'voice' is a required property")
    return Response(b"ID3" + body["input"].encode(), media_type="audio/mpeg")


def _form(content_type: str, raw: bytes) -> EmailMessage:
    message = BytesParser(policy=default_policy).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    assert isinstance(message, EmailMessage)
    return message


async def _transcriptions(request: Request, recorded: Recorded) -> Response:
    fields: dict[str, str] = {}
    audio, filename, file_type = b"", "", ""
    for part in _form(request.headers["content-type"], await request.body()).iter_parts():
        assert isinstance(part, EmailMessage)
        name = str(part.get_param("name", header="content-disposition"))
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        if part.get_filename():
            audio, filename, file_type = data, str(part.get_filename()), part.get_content_type()
        else:
            fields[name] = data.decode()
    text = f"heard {len(audio)} bytes of {filename}"
    recorded.body = {"fields": fields, "filename": filename, "content_type": file_type, "audio": audio}
    fmt = fields.get("response_format", "json")
    if fmt in ("text", "srt", "vtt"):
        return PlainTextResponse(text)
    if fmt == "verbose_json":
        segments = [{"id": 0, "start": 0.0, "end": 1.5, "text": text}]
        return JSONResponse(
            {
                "text": text,
                "language": fields.get("language", "english"),
                "duration": 1.5,
                "segments": segments,
            }
        )
    return JSONResponse({"text": text})


Handler = Callable[[Request, Recorded], Awaitable[Response]]


def _endpoint(upstream: FakeUpstream, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Record the request, then check the key as a real server would, then answer."""

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        is_json = request.headers.get("content-type", "").startswith("application/json")
        path, body = request.url.path.removeprefix("/v1/"), json.loads(raw) if is_json else None
        recorded = Recorded(path, dict(request.headers), body, request.client.port if request.client else 0)
        upstream.requests.append(recorded)
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "Incorrect API key provided")
        return await handler(request, recorded)

    return endpoint


def create_app(upstream: FakeUpstream) -> Starlette:
    handlers: dict[str, Handler] = {
        "chat/completions": _text,
        "completions": _text,
        "embeddings": _embeddings,
        "images/generations": _images,
        "audio/speech": _speech,
        "audio/transcriptions": _transcriptions,
    }
    return Starlette(
        routes=[
            Route(f"/v1/{path}", _endpoint(upstream, handler), methods=["POST"])
            for path, handler in handlers.items()
        ]
    )


def unused_port() -> int:
    """A port nothing listens on, for the connection-refused case."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_fake_upstream(timeout_s: float = 10.0) -> Iterator[FakeUpstream]:
    """Run the fake on a free port with a real uvicorn server in a thread; stop it on exit."""
    upstream = FakeUpstream(url="")
    config = uvicorn.Config(
        create_app(upstream),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        ws="none",
        loop="asyncio",
        http="h11",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-openai-upstream", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI upstream did not start; see the captured log above")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        upstream.url = f"http://127.0.0.1:{port}/v1"
        yield upstream
    finally:
        server.should_exit = True
        thread.join(timeout=timeout_s)
