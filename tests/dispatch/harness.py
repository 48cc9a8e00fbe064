"""A region queue node wired to real stores, with fake workers that record the frames the node sends them.

Built from the same public pieces as `ferryman.container` (SQLite store, writer, cipher, repository, node, job
service), but it keeps hold of the writer so a test can wait for every queued write to commit (`settle`),
and it records each job the node finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import Connection

from ferryman import dispatch, jobs, privacy, store
from ferryman import protocol as p
from ferryman.clock import FakeClock
from ferryman.dispatch.registry import WorkerConn
from ferryman.types import OrgId, Priority, Region, Task

MODEL = "m"
OTHER_MODEL = "m2"
ORG = OrgId("org_a")
DEADLINES = {"interactive": 600.0, "async": 3600.0, "batch": 86400.0}
# the ticker never fires by itself: tests call `node.tick()` after moving the FakeClock
QUIET_NODE = dispatch.NodeSettings(
    lease_seconds=30.0, tick_seconds=3600.0, poison_threshold=3, max_attempts=5
)


@dataclass
class FakeWorker:
    """One worker connection: `frames` is everything the node sent it, in order."""

    conn: WorkerConn
    frames: list[str]
    closes: list[None] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.conn.id

    def messages(self) -> list[p.Message]:
        return [p.decode_node_message(f) for f in self.frames]

    def after_registered(self) -> list[p.Message]:
        """Every message but the opening `registered`."""
        messages = self.messages()
        assert isinstance(messages[0], p.Registered)
        return messages[1:]

    def dispatches(self) -> list[p.JobDispatch]:
        return [m for m in self.messages() if isinstance(m, p.JobDispatch)]

    def dispatch_of(self, job_id: str) -> p.JobDispatch:
        found = [m for m in self.dispatches() if m.job_id == job_id]
        assert found, f"worker {self.id} got no job frame for {job_id}"
        return found[-1]


@dataclass
class NodeHarness:
    clock: FakeClock
    writer: store.StoreWriter
    repo: jobs.JobRepository
    events: jobs.JobEvents
    node: dispatch.QueueNode
    service: jobs.JobService
    registry: CollectorRegistry
    finished: list[jobs.Job]
    admission: jobs.Admission

    def attach(
        self,
        worker_id: str,
        *,
        models: tuple[str, ...] = (MODEL,),
        slots: int = 1,
        tasks: tuple[Task, ...] = (Task.CHAT,),
        credential: str | None = None,
    ) -> FakeWorker:
        register = p.Register(
            worker_id=worker_id,
            region="us",
            slots=slots,
            models=tuple(p.ModelOffer(name, tasks) for name in models),
        )
        frames: list[str] = []
        closes: list[None] = []
        conn = self.node.attach(
            register, send=frames.append, close=lambda: closes.append(None), credential=credential
        )
        return FakeWorker(conn=conn, frames=frames, closes=closes)

    def send(self, worker: FakeWorker, message: p.Message) -> None:
        """What the node's WebSocket handler does with a frame: decode it, then hand it to the node."""
        self.node.handle(worker.conn, p.decode_worker_message(p.encode(message)))

    async def submit(
        self,
        *,
        org: OrgId = ORG,
        model: str = MODEL,
        task: Task = Task.CHAT,
        priority: Priority = Priority.INTERACTIVE,
        deadline_seconds: float | None = None,
        payload: dict[str, Any] | None = None,
        weight: float = 1.0,
    ) -> jobs.Job:
        job, created = await self.service.submit(
            jobs.JobSpec(
                org_id=org,
                region=Region.US,
                task=task,
                model=model,
                priority=priority,
                payload=payload if payload is not None else {"prompt": "hi"},
                deadline_seconds=deadline_seconds,
                weight=weight,
            )
        )
        assert created
        return job

    async def settle(self, rounds: int = 4) -> None:
        """Let the node's background work finish: each round waits for the writes queued before it."""
        for _ in range(rounds):
            await self.writer.write(_nothing)
            await asyncio.sleep(0)

    def finished_states(self) -> dict[str, jobs.JobState]:
        return {job.id: job.state for job in self.finished}


def _nothing(conn: Connection) -> None:
    return None


@contextlib.asynccontextmanager
async def open_harness(
    data_dir: Path,
    *,
    clock: FakeClock | None = None,
    settings: dispatch.NodeSettings = QUIET_NODE,
    models: tuple[tuple[str, tuple[Task, ...]], ...] = ((MODEL, (Task.CHAT,)), (OTHER_MODEL, (Task.CHAT,))),
    first_checks: tuple[jobs.AdmissionCheck, ...] = (),
    extra_checks: tuple[jobs.AdmissionCheck, ...] = (),
    observers: tuple[jobs.CompletionObserver, ...] = (),
) -> AsyncIterator[NodeHarness]:
    """A US queue node on a SQLite store in `data_dir` that knows `models` already (from earlier workers).

    The job service admits with `first_checks`, the standard checks, then `extra_checks`; like the container, the node
    tells the admission of every finished job (a completion observer), so holds are released at each job's end."""
    clock = clock or FakeClock()
    engine = store.create_engine(f"sqlite+aiosqlite:///{data_dir / 'region.db'}")
    try:
        await store.migrate(engine, "region")
        writer = store.StoreWriter(engine, name="test")
        writer.start()
        try:
            cipher = privacy.PayloadCipher(region="us", master_key=bytes(32), engine=engine, writer=writer)
            repo = jobs.JobRepository(
                region=Region.US,
                engine=engine,
                writer=writer,
                cipher=cipher,
                blobs=store.LocalBlobStore(data_dir / "blobs"),
            )
            await repo.upsert_models(
                [(name, [t.value for t in tasks]) for name, tasks in models], clock.now()
            )
            registry = CollectorRegistry()
            events = jobs.JobEvents()
            finished: list[jobs.Job] = []
            repos: dict[Region, jobs.JobRepository] = {Region.US: repo}
            nodes: dict[Region, jobs.QueueClient] = {}
            admission = jobs.Admission(
                [
                    *first_checks,
                    *jobs.standard_checks(
                        nodes=nodes, repos=repos, allow_private_webhooks=True, allow_private_input_urls=False
                    ),
                    *extra_checks,
                ]
            )

            node = dispatch.QueueNode(
                Region.US,
                repo=repo,
                events=events,
                clock=clock,
                settings=settings,
                metrics=dispatch.NodeMetrics(registry),
                completions=[admission, jobs.OnFinished(finished.append), *observers],
            )
            nodes[Region.US] = node
            await node.start()
            try:
                service = jobs.JobService(
                    repos=repos,
                    nodes=nodes,
                    events=events,
                    clock=clock,
                    settings=jobs.JobSettings(
                        default_deadline_seconds=DEADLINES, max_wait_seconds=5.0, allow_private_webhooks=True
                    ),
                    admission=admission,
                )
                yield NodeHarness(
                    clock=clock,
                    writer=writer,
                    repo=repo,
                    events=events,
                    node=node,
                    service=service,
                    registry=registry,
                    finished=finished,
                    admission=admission,
                )
            finally:
                await node.stop()
        finally:
            await writer.stop()
    finally:
        await engine.dispose()
