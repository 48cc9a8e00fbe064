"""The worker agent: one WebSocket to its region's queue node, jobs run on a backend, results reported back.

It reconnects with exponential backoff and jitter, runs up to `slots` jobs at once, renews each job's lease while
the backend works, and on SIGTERM drains: it finishes what it holds, takes nothing new, then exits.

It registers while its backend is still loading (`warm_up`), naming those models as `loading`, and sends
`model_ready` once they load: the node knows at once that the model is coming, and sends no job before it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from dataclasses import dataclass
from typing import Any

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ferryman import protocol as p
from ferryman.types import Task
from ferryman.worker.backends.base import Backend, BackendError, Blob, Delta, Output, Progress, WorkItem

log = structlog.get_logger(__name__)

MAX_BACKOFF_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class AgentSettings:
    url: str
    token: str
    region: str
    worker_id: str
    slots: int = 1
    hardware: dict[str, Any] | None = None
    ssl_context: ssl.SSLContext | None = None


def connect_url(base: str) -> str:
    """`http(s)://host[:port][/prefix]` → `ws(s)://…/v1/workers/connect`."""
    base = base.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base.removeprefix("https://")
    elif base.startswith("http://"):
        base = "ws://" + base.removeprefix("http://")
    return base + "/v1/workers/connect"


class Unrecoverable(Exception):
    """The node refused us for a reason retrying will not fix (bad token, wrong region)."""


class WorkerAgent:
    def __init__(self, settings: AgentSettings, backend: Backend) -> None:
        self._settings, self._backend = settings, backend
        self._running: dict[str, tuple[int, asyncio.Task[None]]] = {}
        self._draining = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._lease_seconds = 30.0
        self._loading = (
            frozenset(o.name for o in backend.offers()) if hasattr(backend, "warm_up") else frozenset()
        )
        self._told_loading: frozenset[str] = frozenset()  # what this connection's node was told is loading
        self.jobs_done = 0

    def drain(self) -> None:
        """Finish running jobs, take no new ones, then let `run` return."""
        if not self._draining.is_set():
            log.info("worker.draining", running=len(self._running))
            self._draining.set()
            if self._ws is not None:
                asyncio.get_running_loop().create_task(self._send_drain(self._ws))

    async def _send_drain(self, ws: ClientConnection) -> None:
        await self._send(p.Drain())
        if not self._running:
            await ws.close()

    async def run(self) -> None:
        """Warm the backend up and serve the node until drained. A warm-up that fails ends the worker with it."""
        loop = asyncio.get_running_loop()
        warming = loop.create_task(self._warm_up(), name="worker-warm-up")
        serving = loop.create_task(self._serve())
        try:
            await asyncio.wait({warming, serving}, return_when=asyncio.FIRST_COMPLETED)
            if warming.done() and not warming.cancelled() and (error := warming.exception()) is not None:
                raise error
            await serving
        finally:
            for task in (warming, serving):
                task.cancel()
            await asyncio.gather(warming, serving, return_exceptions=True)
            await self._backend.aclose()

    async def _warm_up(self) -> None:
        warm_up = getattr(self._backend, "warm_up", None)
        if warm_up is None:
            return
        started = time.perf_counter()
        await warm_up()
        self._loading = frozenset()
        log.info(
            "worker.warm",
            models=sorted(o.name for o in self._backend.offers()),
            seconds=round(time.perf_counter() - started, 2),
        )
        await self._announce_ready()

    async def _announce_ready(self) -> None:
        """Tell the node which models it was told are loading have loaded (only once it has registered us)."""
        ready, self._told_loading = self._told_loading - self._loading, self._told_loading & self._loading
        for model in sorted(ready):
            await self._send(p.ModelReady(model=model))

    async def _serve(self) -> None:
        attempt = 0
        while not (self._draining.is_set() and not self._running):
            try:
                await self._session()
                attempt = 0
            except Unrecoverable:
                raise
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                if self._draining.is_set():
                    break
                attempt += 1
                delay = min(MAX_BACKOFF_SECONDS, 0.25 * 2 ** min(attempt, 8)) * random.uniform(0.5, 1.0)
                log.warning("worker.disconnected", error=type(exc).__name__, retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)

    async def _session(self) -> None:
        headers = {"Authorization": f"Bearer {self._settings.token}"}
        try:
            ws = await connect(
                connect_url(self._settings.url),
                additional_headers=headers,
                ssl=self._settings.ssl_context,
                max_size=p.MAX_FRAME_BYTES,
                open_timeout=10,
                ping_interval=10,
                compression=None,
                ping_timeout=20,
            )
        except InvalidStatus as exc:
            raise OSError(f"handshake refused with HTTP {exc.response.status_code}") from exc
        self._ws = ws
        try:
            await self._register(ws)
            if self._draining.is_set():
                await self._send(p.Drain())
            async for frame in ws:
                self._receive(frame)
                if self._draining.is_set() and not self._running:
                    break
        finally:
            self._ws, self._told_loading = None, frozenset()
            for _, task in self._running.values():
                task.cancel()  # the node re-queues them with a new fence; our results would be refused
            await ws.close()

    async def _register(self, ws: ClientConnection) -> None:
        offers = tuple(self._backend.offers())
        loading = self._loading
        await ws.send(
            p.encode(
                p.Register(
                    worker_id=self._settings.worker_id,
                    region=self._settings.region,
                    models=offers,
                    slots=self._settings.slots,
                    backend=self._backend.name,
                    hardware=self._settings.hardware or {},
                    loading=tuple(sorted(loading)),
                )
            )
        )
        reply = p.decode_node_message(await asyncio.wait_for(ws.recv(), 10))
        if isinstance(reply, p.ErrorMessage):
            raise Unrecoverable(f"queue node refused this worker: {reply.code}: {reply.message}")
        if isinstance(reply, p.Registered):
            self._lease_seconds = reply.lease_seconds
            log.info(
                "worker.registered",
                worker_id=self._settings.worker_id,
                region=self._settings.region,
                models=[o.name for o in offers],
                loading=sorted(loading),
                slots=self._settings.slots,
            )
            self._told_loading = loading
            await self._announce_ready()  # what finished loading while we registered

    def _receive(self, frame: str | bytes) -> None:
        """Act on one frame from the node. A frame that is not a valid node message (a node of another version,
        a proxy mangling traffic) is logged and dropped: the jobs this worker runs and the connection go on."""
        if isinstance(frame, bytes):
            log.error("worker.bad_frame", error="binary frame; the protocol sends text", bytes=len(frame))
            return
        try:
            message = p.decode_node_message(frame)
        except p.ProtocolError as exc:  # its message names the problem, never the frame's content
            log.error("worker.bad_frame", error=str(exc), bytes=len(frame.encode()))
            return
        self._on_frame(message)

    def _on_frame(self, message: p.Message) -> None:
        if isinstance(message, p.JobDispatch):
            task = asyncio.get_running_loop().create_task(self._run_job(message))
            self._running[message.job_id] = (message.fence, task)
            task.add_done_callback(lambda _: self._forget(message.job_id, message.fence))
        elif isinstance(message, p.JobCancel):
            held = self._running.get(message.job_id)
            if held is not None:
                held[1].cancel()
        elif isinstance(message, p.ErrorMessage):
            log.warning("worker.node_error", code=message.code, job_id=message.job_id)
            held = self._running.get(message.job_id or "")
            if message.code == "stale_fence" and held is not None and held[0] == message.fence:
                held[1].cancel()

    def _forget(self, job_id: str, fence: int) -> None:
        held = self._running.get(job_id)
        if held is not None and held[0] == fence:
            del self._running[job_id]
        if self._draining.is_set() and not self._running and self._ws is not None:
            asyncio.get_running_loop().create_task(self._ws.close())

    async def _send(self, message: p.Message) -> None:
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(p.encode(message))

    async def _run_job(self, job: p.JobDispatch) -> None:
        await self._send(p.JobAccepted(job_id=job.job_id, fence=job.fence))
        renewer = asyncio.get_running_loop().create_task(self._renew(job))
        started = time.perf_counter()
        try:
            item = WorkItem(
                job_id=job.job_id,
                task=Task(job.task),
                model=job.model,
                payload=job.payload,
                attempt=job.attempt,
            )
            async for chunk in self._backend.run(item):
                if isinstance(chunk, Delta):
                    await self._send(p.JobChunk(job_id=job.job_id, fence=job.fence, data=chunk.data))
                elif isinstance(chunk, Progress):
                    await self._send(
                        p.JobProgress(
                            job_id=job.job_id, fence=job.fence, progress=chunk.fraction, message=chunk.message
                        )
                    )
                elif isinstance(chunk, Blob):
                    await self._send_blob(job, chunk)
                elif isinstance(chunk, Output):
                    work_ms = (time.perf_counter() - started) * 1000
                    await self._send(
                        p.JobResult(
                            job_id=job.job_id,
                            fence=job.fence,
                            output=chunk.output,
                            usage=chunk.usage,
                            work_ms=work_ms,
                        )
                    )
                    self.jobs_done += 1
                    return
            raise BackendError("no_output", f"backend {self._backend.name} ended without an output")
        except BackendError as exc:
            await self._send(
                p.JobError(
                    job_id=job.job_id,
                    fence=job.fence,
                    code=exc.code,
                    message=exc.message,
                    retryable=exc.retryable,
                )
            )
        except ValueError as exc:
            await self._send(
                p.JobError(
                    job_id=job.job_id,
                    fence=job.fence,
                    code="invalid_input",
                    message=str(exc),
                    retryable=False,
                )
            )
        finally:
            renewer.cancel()

    async def _send_blob(self, job: p.JobDispatch, blob: Blob) -> None:
        if self._ws is not None:
            frame = p.encode_blob(
                p.JobBlob(
                    job_id=job.job_id,
                    fence=job.fence,
                    name=blob.name,
                    content_type=blob.content_type,
                    data=blob.data,
                )
            )
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(frame)

    async def _renew(self, job: p.JobDispatch) -> None:
        """Progress renews the lease; send it well before the lease could lapse, whatever the backend does."""
        while True:
            await asyncio.sleep(max(0.05, self._lease_seconds / 3))
            await self._send(p.JobProgress(job_id=job.job_id, fence=job.fence))
