"""`echo`: a deterministic, instant backend for tests and benchmarks; it runs no model.

It is Ferryman's `MockTransport`: documented as a test double, never offered as a feature. It echoes the input
back in each task's canonical output shape, counts whitespace-separated words as tokens, and honours a few
test-only payload keys: `sleep_ms` (work that takes time, renewing nothing by itself), `stream_pieces`, and
`fail` (`{"code", "retryable", "message"}`) to raise a BackendError (with that message, as a backend quoting
its input would). The test-only option `load_delay_ms`
(`--option load_delay_ms=2000`) makes its warm-up take that long, as a real model's load does.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ferryman.errors import ConfigError
from ferryman.protocol import ModelOffer
from ferryman.types import Task
from ferryman.worker.backends.base import (
    BackendError,
    BackendSettings,
    Blob,
    Chunk,
    Delta,
    Output,
    Progress,
    WorkItem,
)

DEFAULT_MODELS = ("echo-1",)


def _words(text: str) -> list[str]:
    return text.split()


def _last_user_text(payload: dict[str, Any]) -> str:
    for message in reversed(payload.get("messages") or []):
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(payload.get("prompt", ""))


def _prompt_tokens(payload: dict[str, Any]) -> int:
    messages = payload.get("messages")
    if messages:
        return sum(len(_words(str(m.get("content", "")))) for m in messages if isinstance(m, dict))
    return len(_words(str(payload.get("prompt", ""))))


def _embedding(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    raw = [digest[i % len(digest)] - 127.5 for i in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


def _wav_silence(seconds: float, rate: int = 16000) -> bytes:
    samples = int(seconds * rate)
    data = b"\x00\x00" * samples
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += (
        struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(data))
    )
    return header + data


class EchoBackend:
    name = "echo"

    def __init__(self, settings: BackendSettings) -> None:
        self._models = settings.models or DEFAULT_MODELS
        try:
            self._load_delay_s = max(0.0, float(settings.options.get("load_delay_ms", 0)) / 1000)
        except ValueError:
            raise ConfigError("echo option load_delay_ms must be a number of milliseconds") from None

    def offers(self) -> Sequence[ModelOffer]:
        return [ModelOffer(name=m, tasks=tuple(Task)) for m in self._models]

    async def warm_up(self) -> None:
        """Instant, unless `load_delay_ms` asks it to stand in for a model that takes time to load."""
        if self._load_delay_s:
            await asyncio.sleep(self._load_delay_s)

    async def aclose(self) -> None:
        return None

    async def run(self, item: WorkItem) -> AsyncIterator[Chunk]:
        payload = item.payload
        sleep_ms = payload.get("sleep_ms")
        if isinstance(sleep_ms, int | float) and sleep_ms > 0:
            yield Progress(fraction=0.0, message="sleeping")
            await asyncio.sleep(sleep_ms / 1000)
        fail = payload.get("fail")
        if isinstance(fail, dict):
            raise BackendError(
                str(fail.get("code", "echo_failure")),
                str(fail.get("message", "echo was asked to fail")),
                retryable=bool(fail.get("retryable", False)),
            )
        if item.task in (Task.CHAT, Task.COMPLETION):
            async for chunk in self._text(item):
                yield chunk
        elif item.task is Task.EMBEDDINGS:
            yield self._embeddings(payload)
        elif item.task in (Task.SPEECH, Task.IMAGE, Task.VIDEO):
            for chunk in self._media(item):
                yield chunk
        else:
            yield Output({"text": str(payload.get("text", "")), "language": "en", "duration": 0.0}, {})

    async def _text(self, item: WorkItem) -> AsyncIterator[Chunk]:
        text = _last_user_text(item.payload)
        max_tokens = item.payload.get("max_tokens")
        words = _words(text)
        finish = "stop"
        if isinstance(max_tokens, int) and 0 <= max_tokens < len(words):
            words, finish = words[:max_tokens], "length"
        key = "content" if item.task is Task.CHAT else "text"
        if item.payload.get("stream"):
            for i, word in enumerate(words):
                yield Delta({"index": 0, key: word if i == 0 else " " + word})
        reply = " ".join(words)
        prompt_tokens = _prompt_tokens(item.payload)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        }
        if item.task is Task.CHAT:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": finish,
            }
        else:
            choice = {"index": 0, "text": reply, "finish_reason": finish}
        yield Output({"choices": [choice]}, usage)

    def _embeddings(self, payload: dict[str, Any]) -> Output:
        inputs = payload.get("input", "")
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs]
        requested = payload.get("dimensions")
        dims = requested if isinstance(requested, int) and 0 < requested <= 4096 else 8
        data = [{"index": i, "embedding": _embedding(t, dims)} for i, t in enumerate(texts)]
        tokens = sum(len(_words(t)) for t in texts)
        return Output({"data": data}, {"prompt_tokens": tokens, "total_tokens": tokens})

    def _media(self, item: WorkItem) -> list[Chunk]:
        if item.task is Task.SPEECH:
            audio = _wav_silence(0.1)
            return [
                Blob("speech.wav", "audio/wav", audio),
                Output(
                    {"audio": {"blob": "speech.wav", "content_type": "audio/wav", "format": "wav"}},
                    {"characters": len(str(item.payload.get("input", "")))},
                ),
            ]
        count = int(item.payload.get("num_images", 1) or 1) if item.task is Task.IMAGE else 1
        chunks: list[Chunk] = []
        images = []
        for i in range(max(1, min(count, 4))):
            name = f"image-{i}.bin"
            chunks.append(Blob(name, "application/octet-stream", f"echo image {i}".encode()))
            images.append({"blob": name, "width": 1, "height": 1, "content_type": "application/octet-stream"})
        chunks.append(
            Output({"images": images, "seed": item.payload.get("seed", 0)}, {"images": len(images)})
        )
        return chunks
