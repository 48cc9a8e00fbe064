"""A minimal keep-alive HTTP/1.1 load generator on raw asyncio streams, with SSE token timing.

General clients (httpx) cost more CPU per request than the servers measured here, which would make the client
the bottleneck; this one does only what the benchmarks need: POST a fixed body, read a Content-Length or chunked
response, and for streams note when each `~T<i>~` token marker (bench/upstream.py) first arrives.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

TOKEN_MARKER = re.compile(rb"~T(\d+)~")
STREAM_TIMEOUT_S = 60.0


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0..1); NaN for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed_s: float = 0.0

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def merge(self, other: LoadResult) -> None:
        """Add another run's samples; elapsed adds up, as for interleaved slices of one measurement."""
        self.latencies_ms += other.latencies_ms
        self.errors += other.errors
        self.elapsed_s += other.elapsed_s

    def summary(self) -> dict[str, Any]:
        return {
            "requests": len(self.latencies_ms),
            "errors": self.errors,
            "per_second": self.per_second,
            "p50_ms": self.percentile(0.50),
            "p95_ms": self.percentile(0.95),
            "p99_ms": self.percentile(0.99),
        }


@dataclass
class StreamResult:
    """One stream: time to the first token, the gaps between consecutive tokens, and which tokens came."""

    status: int
    ttft_ms: float
    gaps_ms: list[float]
    tokens: int
    is_complete: bool


class Connection:
    def __init__(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        payload = json.dumps(body).encode()
        head = [
            f"POST {parts.path or '/'} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
        ]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def _send(self) -> tuple[int, bool, int]:
        """Write the request and read the response head: (status, is_chunked, content length)."""
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, is_chunked, length = int(head[9:12]), False, 0
        for line in head.split(b"\r\n"):
            name = line[:18].lower()
            if name.startswith(b"content-length:"):
                length = int(line[15:])
            elif name.startswith(b"transfer-encoding:") and b"chunked" in line.lower():
                is_chunked = True
        return status, is_chunked, length

    async def _chunk(self) -> bytes:
        """One piece of a chunked body; b"" at its end."""
        assert self.reader is not None
        size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
        data = await self.reader.readexactly(size + 2)
        return data[:-2]

    async def post(self) -> tuple[int, bytes]:
        assert self.reader is not None
        status, is_chunked, length = await self._send()
        if not is_chunked:
            return status, await self.reader.readexactly(length)
        body = bytearray()
        while piece := await self._chunk():
            body += piece
        return status, bytes(body)

    async def stream(self) -> StreamResult:
        """POST and read an SSE body, timing each token marker's first arrival outside a final `done` event."""
        started = time.perf_counter()
        status, is_chunked, length = await self._send()
        arrived: dict[int, float] = {}
        buffer = b""
        while True:
            piece = await self._chunk() if is_chunked else await self._read_plain(length)
            now = time.perf_counter()
            if not piece:
                break
            buffer += piece
            *events, buffer = buffer.replace(b"\r\n", b"\n").split(b"\n\n")
            for event in events:
                if b"event: done" in event:
                    continue  # the native API's last event repeats the whole output: not a streamed token
                for match in TOKEN_MARKER.finditer(event):
                    arrived.setdefault(int(match.group(1)), now)
            if not is_chunked:
                break
        times = [arrived[i] for i in sorted(arrived)]
        gaps = [(b - a) * 1000 for a, b in zip(times, times[1:], strict=False)]
        ttft = (arrived[0] - started) * 1000 if 0 in arrived else float("nan")
        complete = status == 200 and sorted(arrived) == list(range(len(arrived)))
        return StreamResult(status, ttft, gaps, len(arrived), complete)

    async def _read_plain(self, length: int) -> bytes:
        assert self.reader is not None
        return await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _ok(status: int, body: bytes, expected: int) -> bool:
    if status != expected:
        return False
    return expected != 200 or b'"succeeded"' in body or b'"choices"' in body


OnResponse = Callable[[int, bytes], None]


async def run_load(
    url: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    concurrency: int,
    seconds: float,
    max_requests: int | None = None,
    warmup: int = 20,
    ok_status: int = 200,
    on_response: OnResponse | None = None,
) -> LoadResult:
    """`concurrency` connections each sending back-to-back requests for `seconds` (or `max_requests` in all).

    A response counts as an error unless its status is `ok_status` (and, for 200, it holds a result);
    `on_response` sees every response, for callers that read more from the body.
    """
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
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.errors += 1
                await conn.open()
                continue
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            if not _ok(status, data, ok_status):
                result.errors += 1
            if on_response is not None:
                on_response(status, data)

    began = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in connections))
    result.elapsed_s = time.perf_counter() - began
    for conn in connections:
        conn.close()
    return result


def _run_load_in_process(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    max_requests: int | None,
) -> LoadResult:
    return asyncio.run(
        run_load(
            url,
            body,
            headers=headers,
            concurrency=concurrency,
            seconds=seconds,
            max_requests=max_requests,
            warmup=2,
        )
    )


def run_load_processes(
    url: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    processes: int,
    concurrency: int,
    seconds: float,
    max_requests: int | None = None,
) -> LoadResult:
    """`run_load` split over `processes` OS processes, for when one client process would be the bottleneck.

    Concurrency and the request budget are divided between them; the rate is the sum of theirs.
    """
    share = max(1, concurrency // processes)
    budget = None if max_requests is None else -(-max_requests // processes)
    with ProcessPoolExecutor(processes) as pool:
        parts = list(
            pool.map(
                _run_load_in_process,
                *zip(*[(url, body, headers or {}, share, seconds, budget)] * processes, strict=True),
            )
        )
    merged = LoadResult(elapsed_s=max(p.elapsed_s for p in parts))
    for part in parts:
        merged.latencies_ms += part.latencies_ms
        merged.errors += part.errors
    return merged


@dataclass
class StreamLoad:
    streams: list[StreamResult] = field(default_factory=list)
    errors: int = 0

    def summary(self, expected_tokens: int) -> dict[str, Any]:
        ttfts = [s.ttft_ms for s in self.streams if s.tokens]
        gaps = [g for s in self.streams for g in s.gaps_ms]
        whole = sum(1 for s in self.streams if s.is_complete and s.tokens == expected_tokens)
        short = [s.tokens for s in self.streams if not (s.is_complete and s.tokens == expected_tokens)]
        return {
            "streams": len(self.streams),
            "errors": self.errors,
            "complete_streams": whole,
            "incomplete_token_counts": short[:10],
            "all_tokens_arrived": bool(self.streams) and whole == len(self.streams) and not self.errors,
            "ttft_p50_ms": percentile(ttfts, 0.5),
            "ttft_p99_ms": percentile(ttfts, 0.99),
            "gap_p50_ms": percentile(gaps, 0.5),
            "gap_p99_ms": percentile(gaps, 0.99),
        }


async def run_streams(
    url: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    concurrency: int,
    seconds: float,
    into: StreamLoad | None = None,
) -> StreamLoad:
    """`concurrency` connections each opening streams back to back until `seconds` pass (a stream is finished)."""
    load = into or StreamLoad()
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        conn = Connection(url, body, headers or {})
        await conn.open()
        try:
            while time.perf_counter() < deadline:
                try:
                    load.streams.append(await asyncio.wait_for(conn.stream(), STREAM_TIMEOUT_S))
                except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
                    load.errors += 1
                    await conn.open()
        finally:
            conn.close()

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return load
