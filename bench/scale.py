"""Measure 5, dispatch at scale: jobs/s and dispatch latency with 1, 100 and 1,000 connected workers, and with
100,000 jobs queued.

    python -m bench.scale workers --url URL --count N --slots S --progress FILE   (token in FERRYMAN_WORKER_TOKEN)

The workers are simulated: N WebSocket connections in one child process that speak the worker protocol and answer
each job at once, as the `echo` backend would, so what is measured is the queue node and the API, not a backend.
Dispatch latency is the node's own `wait_ms` (job created → job sent to a worker), read from each response.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tests.e2e.processes import FerrymanServer
from websockets.asyncio.client import ClientConnection, connect

from bench.loadgen import Connection, LoadResult, percentile, run_load
from ferryman import protocol as p
from ferryman.types import Task

MODEL = "echo-1"
ECHO_OUTPUT = {
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}]
}


class SimulatedWorkers:
    """`count` worker connections in this event loop; `done` counts the jobs they have answered."""

    def __init__(self, url: str, token: str, *, count: int, slots: int) -> None:
        self.url = url.replace("http://", "ws://") + "/v1/workers/connect"
        self.token, self.count, self.slots = token, count, slots
        self.done = 0

    async def run(self, ready: asyncio.Event) -> None:
        sockets: list[ClientConnection] = []
        for start in range(0, self.count, 50):  # a few at a time: a thousand handshakes at once time out
            sockets += await asyncio.gather(
                *(self._open(i) for i in range(start, min(self.count, start + 50)))
            )
        ready.set()
        await asyncio.gather(*(self._serve(ws) for ws in sockets))

    async def _open(self, index: int) -> ClientConnection:
        ws = await connect(
            self.url,
            additional_headers={"Authorization": f"Bearer {self.token}"},
            open_timeout=30,
            compression=None,
            ping_interval=None,
            max_size=p.MAX_FRAME_BYTES,
        )
        offer = p.ModelOffer(name=MODEL, tasks=(Task.CHAT,))
        await ws.send(
            p.encode(
                p.Register(
                    worker_id=f"sim-{index}", region="us", models=(offer,), slots=self.slots, backend="echo"
                )
            )
        )
        reply = p.decode_node_message(await asyncio.wait_for(ws.recv(), 30))
        if not isinstance(reply, p.Registered):
            raise RuntimeError(f"worker sim-{index} was refused: {reply}")
        return ws

    async def _serve(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for frame in ws:
                job = json.loads(frame)
                if job.get("type") != "job":
                    continue
                await ws.send(p.encode(p.JobAccepted(job_id=job["job_id"], fence=job["fence"])))
                await ws.send(
                    p.encode(
                        p.JobResult(
                            job_id=job["job_id"],
                            fence=job["fence"],
                            output=ECHO_OUTPUT,
                            usage={"prompt_tokens": 1, "completion_tokens": 1},
                        )
                    )
                )
                self.done += 1


async def _workers_main(args: argparse.Namespace) -> None:
    workers = SimulatedWorkers(
        args.url, os.environ["FERRYMAN_WORKER_TOKEN"], count=args.count, slots=args.slots
    )
    ready = asyncio.Event()
    serving = asyncio.create_task(workers.run(ready))
    await ready.wait()
    progress = Path(args.progress)
    while not serving.done():
        progress.write_text(f"{workers.done}\n")
        await asyncio.wait({serving}, timeout=0.2)
    serving.result()


class WorkerProcess:
    """The simulated workers in a child process, so they don't share an event loop with the load client."""

    def __init__(self, server: FerrymanServer, *, count: int, slots: int, root: Path) -> None:
        self.server, self.count = server, count
        self.progress = server.data_dir / f"progress-{count}.txt"
        argv = [
            sys.executable,
            "-m",
            "bench.scale",
            "workers",
            "--url",
            server.url,
            "--count",
            str(count),
            "--slots",
            str(slots),
            "--progress",
            str(self.progress),
        ]
        env = {
            **os.environ,
            "FERRYMAN_WORKER_TOKEN": server.worker_token("us"),
            "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        self.log = (server.data_dir / f"sim-{count}.log").open("ab")
        self.proc: asyncio.subprocess.Process | None = None
        self._argv, self._env, self._cwd = argv, env, root

    async def __aenter__(self) -> WorkerProcess:
        self.proc = await asyncio.create_subprocess_exec(
            *self._argv, env=self._env, cwd=self._cwd, stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + 120
        while _connected(self.server) < self.count:
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.count} simulated workers did not all register; see {self.log.name}"
                )
            await asyncio.sleep(0.25)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        await self.proc.wait()
        self.log.close()
        while _connected(self.server) > 0:
            await asyncio.sleep(0.1)

    def jobs_done(self) -> int:
        try:
            return int(self.progress.read_text() or 0)
        except (OSError, ValueError):
            return 0


def _connected(server: FerrymanServer) -> int:
    return server.connected_workers("us")


def _wait_ms_collector(into: list[float]) -> Any:
    def collect(status: int, body: bytes) -> None:
        if status in (200, 202):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                into.append(float(json.loads(body)["timings"]["wait_ms"]))

    return collect


async def _sync_load(server: FerrymanServer, *, concurrency: int, seconds: float) -> dict[str, Any]:
    body = {
        "task": "chat",
        "model": MODEL,
        "input": {"messages": [{"role": "user", "content": "ping"}]},
        "wait": 30,
    }
    waits: list[float] = []
    result: LoadResult = await run_load(
        server.url + "/v1/jobs",
        body,
        headers=_auth(server),
        concurrency=concurrency,
        seconds=seconds,
        on_response=_wait_ms_collector(waits),
    )
    return {
        **result.summary(),
        "dispatch_p50_ms": percentile(waits, 0.5),
        "dispatch_p99_ms": percentile(waits, 0.99),
    }


def _auth(server: FerrymanServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


async def measure(
    server: FerrymanServer,
    root: Path,
    *,
    worker_counts: tuple[int, ...],
    seconds: float,
    queued: int,
    concurrency: int = 64,
) -> dict[str, Any]:
    """The sync-load runs for each worker count, then the deep-queue run; one dict for the report."""
    results: dict[str, Any] = {}
    for count in worker_counts:
        async with WorkerProcess(server, count=count, slots=max(1, 64 // count), root=root):
            results[f"workers_{count}"] = await _sync_load(server, concurrency=concurrency, seconds=seconds)
    results["queued"] = await _deep_queue(server, root, queued=queued, concurrency=concurrency)
    return results


async def _deep_queue(server: FerrymanServer, root: Path, *, queued: int, concurrency: int) -> dict[str, Any]:
    """Queue `queued` batch jobs with no worker connected, then connect 100 and time the drain.

    While it drains, interactive jobs sent one at a time measure dispatch latency past the deep batch queue
    (interactive is served first, so each waits only for a slot to free).
    """
    message = {"messages": [{"role": "user", "content": "ping"}]}
    batch = {"task": "chat", "model": MODEL, "priority": "batch", "input": message}
    began = time.perf_counter()
    fill = await run_load(
        server.url + "/v1/jobs",
        batch,
        headers=_auth(server),
        concurrency=concurrency,
        seconds=3600,
        max_requests=queued,
        warmup=0,
        ok_status=202,
    )
    fill_s = time.perf_counter() - began
    waits: list[float] = []
    collect = _wait_ms_collector(waits)
    async with WorkerProcess(server, count=100, slots=1, root=root) as workers:
        probe = Connection(
            server.url + "/v1/jobs",
            {"task": "chat", "model": MODEL, "input": message, "wait": 30},
            _auth(server),
        )
        await probe.open()
        began = time.perf_counter()
        while workers.jobs_done() - len(waits) < queued - fill.errors and time.perf_counter() - began < 600:
            collect(*await probe.post())
        drain_s = time.perf_counter() - began
        probe.close()
    return {
        "queued": queued - fill.errors,
        "submit_per_second": queued / fill_s,
        "submit_errors": fill.errors,
        "drain_seconds": drain_s,
        "drain_jobs_per_second": (queued - fill.errors) / drain_s,
        "interactive_dispatch_p50_ms": percentile(waits, 0.5),
        "interactive_dispatch_p99_ms": percentile(waits, 0.99),
        "interactive_jobs": len(waits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    workers = sub.add_parser("workers", help="Run simulated workers until terminated.")
    workers.add_argument("--url", required=True)
    workers.add_argument("--count", type=int, required=True)
    workers.add_argument("--slots", type=int, default=1)
    workers.add_argument("--progress", required=True, help="File the count of answered jobs is written to.")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_workers_main(args))


if __name__ == "__main__":
    main()
