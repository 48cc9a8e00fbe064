"""Measures 1–4 of the suite: added latency, streaming, throughput on one core, and memory.

Each takes `Target`s (direct to the fake upstream, LiteLLM, Ferryman) that are already running; the suite
(bench/suite.py) starts and stops them. Latency and streaming interleave the targets in short slices, so a
burst of load from elsewhere on the machine hits all of them alike instead of one.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs, wrk
from bench.loadgen import LoadResult, StreamLoad, run_load, run_streams


@dataclass
class Target:
    """One path to the fake upstream: where to POST, what, and which processes make up the gateway."""

    name: str
    url: str
    body: dict[str, Any]
    stream_body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    processes: dict[str, int] = field(default_factory=dict)

    @property
    def roots(self) -> list[int]:
        return list(self.processes.values())


def rotated(targets: list[Target], by: int) -> list[Target]:
    return targets[by % len(targets) :] + targets[: by % len(targets)]


async def latency(
    targets: list[Target], *, concurrency: int, rounds: int, slice_s: float
) -> dict[str, LoadResult]:
    """Non-streaming chat: every target for `slice_s` per round, in a rotating order."""
    results = {t.name: LoadResult() for t in targets}
    for i in range(rounds):
        for target in rotated(targets, i):
            part = await run_load(
                target.url,
                target.body,
                headers=target.headers,
                concurrency=concurrency,
                seconds=slice_s,
                warmup=5,
            )
            results[target.name].merge(part)
    return results


async def streaming(
    targets: list[Target], *, concurrency: int, rounds: int, slice_s: float
) -> dict[str, StreamLoad]:
    """Streams of the fake upstream's paced tokens, interleaved like `latency`."""
    results = {t.name: StreamLoad() for t in targets}
    for i in range(rounds):
        for target in rotated(targets, i):
            await run_streams(
                target.url,
                target.stream_body,
                headers=target.headers,
                concurrency=concurrency,
                seconds=slice_s,
                into=results[target.name],
            )
    return results


def _core_busy() -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat."""
    cores = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            name, *values = line.split()
            numbers = [int(v) for v in values]
            idle = numbers[3] + numbers[4]
            cores[int(name[3:])] = (sum(numbers) - idle, sum(numbers))
    return cores


def throughput(
    target: Target,
    *,
    upstream_root: int,
    seconds: float,
    connections: int,
    gateway_cpu: int = 0,
    client_cpu: int = 1,
) -> dict[str, Any]:
    """Requests/s at saturation with the gateway alone on `gateway_cpu`, client and upstream on `client_cpu`.

    For the direct target the gateway *is* the upstream. Returns the load summary plus how busy each core and
    the gateway's processes were, which shows whether the gateway (and not the client) was the limit.
    """
    everything = set(range(os.cpu_count() or 1))
    own = [os.getpid()]
    procs.pin(target.roots, {gateway_cpu})
    if upstream_root not in target.roots:
        procs.pin([upstream_root], {client_cpu})
    procs.pin(own, {client_cpu}, with_children=False)  # the gateways are our children: leave them be
    pinned = procs.is_pinned(target.roots, {gateway_cpu})
    try:
        cpu_before, cores_before = procs.cpu_seconds(target.roots), _core_busy()
        with procs.RssSampler(target.roots) as rss:
            began = time.perf_counter()
            summary = _saturate(target, seconds=seconds, connections=connections)
            wall_s = time.perf_counter() - began
        cpu_used = procs.cpu_seconds(target.roots) - cpu_before
        cores_after = _core_busy()
    finally:
        procs.pin([*target.roots, upstream_root], everything)
        procs.pin(own, everything, with_children=False)
    busy = {
        core: (cores_after[core][0] - b) / max(1, cores_after[core][1] - t)
        for core, (b, t) in cores_before.items()
        if core in cores_after
    }
    return {
        **summary,
        "gateway_cpu_share": cpu_used / wall_s,
        "gateway_core_busy": busy.get(gateway_cpu),
        "client_core_busy": busy.get(client_cpu),
        "peak_rss_mb": rss.peak_bytes / 2**20,
        "gateway_pinned": pinned,
        "error_rate": summary["errors"] / max(1, summary["requests"]),
    }


def _saturate(target: Target, *, seconds: float, connections: int) -> dict[str, Any]:
    if wrk.available():
        return wrk.run(
            target.url, target.body, headers=target.headers, connections=connections, seconds=seconds
        )
    result = asyncio.run(
        run_load(target.url, target.body, headers=target.headers, concurrency=connections, seconds=seconds)
    )
    return {**result.summary(), "elapsed_s": result.elapsed_s, "client": "loadgen"}


async def memory(
    target: Target, *, marks: tuple[int, ...], connections: int, budget_s: float
) -> dict[str, Any]:
    """RSS of the gateway after each cumulative request count in `marks` (counted from now), and the peak.

    Runs unpinned, at `connections` concurrency; growth between the marks means memory kept per request. A slow
    gateway would take longer than the suite may: the run stops at `budget_s` and reports the RSS after as many
    requests as it got through, under their real count, so a short run is visible and never passed off as 100k.
    """
    after: dict[str, float] = {}
    done, errors = 0, 0
    began = time.perf_counter()
    with procs.RssSampler(target.roots, interval_s=0.25) as rss:
        for mark in marks:
            left_s = budget_s - (time.perf_counter() - began)
            part = await run_load(
                target.url,
                target.body,
                headers=target.headers,
                concurrency=connections,
                seconds=max(1.0, left_s),
                max_requests=mark - done,
                warmup=0,
            )
            done, errors = done + len(part.latencies_ms), errors + part.errors
            await asyncio.sleep(1.0)  # let in-flight work and deferred writes settle before reading RSS
            after[str(done)] = procs.rss_bytes(target.roots) / 2**20
    counts = sorted(after, key=int)
    by_process = {name: procs.rss_bytes([pid]) / 2**20 for name, pid in target.processes.items()}
    return {
        "rss_mb_after": after,
        "rss_mb_by_process": by_process,
        "growth_mb": after[counts[-1]] - after[counts[0]],
        "requests": done,
        "reached_last_mark": done >= marks[-1],
        "peak_rss_mb": rss.peak_bytes / 2**20,
        "errors": errors,
        "seconds": time.perf_counter() - began,
    }
