"""A minimal keep-alive HTTP/1.1 load generator on raw asyncio streams.

General clients (httpx) cost more CPU per request than the servers measured here, which would make the client
the bottleneck; this one does only what the benchmarks need: POST a fixed body, read a Content-Length response.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed_s: float = 0.0

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def summary(self) -> dict[str, Any]:
        return {"requests": len(self.latencies_ms), "errors": self.errors, "per_second": self.per_second,
                "p50_ms": self.percentile(0.50), "p95_ms": self.percentile(0.95), "p99_ms": self.percentile(0.99)}


class Connection:
    def __init__(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        payload = json.dumps(body).encode()
        head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {self.host}:{self.port}",
                "Content-Type: application/json", f"Content-Length: {len(payload)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _ok(status: int, body: bytes) -> bool:
    return status == 200 and b'"succeeded"' in body or (status == 200 and b'"choices"' in body)


async def run_load(url: str, body: dict[str, Any], *, headers: dict[str, str] | None = None, concurrency: int,
                   seconds: float, max_requests: int | None = None, warmup: int = 20) -> LoadResult:
    """`concurrency` connections each sending back-to-back requests for `seconds` (or `max_requests` in all)."""
    result = LoadResult()
    connections = [Connection(url, body, headers or {}) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in connections))
    for i in range(warmup):
        await connections[i % concurrency].post()
    deadline = time.perf_counter() + seconds
    budget = [max_requests if max_requests is not None else 1 << 62]

    async def loop(conn: Connection) -> None:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            try:
                status, data = await conn.post()
            except (OSError, asyncio.IncompleteReadError):
                result.errors += 1
                await conn.open()
                continue
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            if not _ok(status, data):
                result.errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in connections))
    result.elapsed_s = time.perf_counter() - began
    for conn in connections:
        conn.close()
    return result
