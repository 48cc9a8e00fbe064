"""The worker agent against a node that misbehaves: a stand-in queue node (a test double speaking the real protocol
over a real WebSocket) sends malformed frames, then a valid job. The agent logs each bad frame and runs the job on
the same connection."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import structlog
from websockets.asyncio.server import ServerConnection, serve

from ferryman import protocol as p
from ferryman.worker import AgentSettings, WorkerAgent
from ferryman.worker.backends.base import BackendSettings
from ferryman.worker.backends.echo import EchoBackend

pytestmark = pytest.mark.anyio

MALFORMED: list[str | bytes] = [
    "not json {",
    "[1, 2, 3]",
    '{"type": "teleport"}',
    '{"type": "job", "job_id": 5, "attempt": 1, "fence": 1, "lease_seconds": 30, "task": "chat", "model": "echo-1"}',
    '{"type": "job", "job_id": "job_us_half"}',
    '{"type": "job_cancel", "job_id": "job_us_x", "fence": "one", "reason": "r"}',
    b"\x00\xff binary",
]
JOB = p.JobDispatch(
    job_id="job_us_after_garbage",
    attempt=1,
    fence=1,
    lease_seconds=30.0,
    task="chat",
    model="echo-1",
    payload={"messages": [{"role": "user", "content": "still here"}]},
)


class StandInNode:
    """Registers the worker, sends MALFORMED then JOB, and records what the worker sends back."""

    def __init__(self) -> None:
        self.connections = 0
        self.received: list[p.Message] = []
        self.done = asyncio.Event()

    async def handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        register = p.decode_worker_message(await ws.recv())
        assert isinstance(register, p.Register)
        await ws.send(p.encode(p.Registered(worker_id=register.worker_id, lease_seconds=30.0)))
        for frame in MALFORMED:
            await ws.send(frame)
        await ws.send(p.encode(JOB))
        async for frame in ws:
            message = p.decode_worker_message(frame)
            self.received.append(message)
            if isinstance(message, p.JobResult | p.JobError):
                self.done.set()


async def test_agent_logs_malformed_frames_from_the_node_and_runs_the_next_valid_job() -> None:
    node = StandInNode()
    async with serve(node.handle, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        settings = AgentSettings(url=f"http://127.0.0.1:{port}", token="t", region="us", worker_id="w-frames")
        agent = WorkerAgent(settings, EchoBackend(BackendSettings()))
        with structlog.testing.capture_logs() as logs:
            running = asyncio.get_running_loop().create_task(agent.run())
            try:
                done = asyncio.get_running_loop().create_task(node.done.wait())
                await asyncio.wait({running, done}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
                if running.done():
                    running.result()  # the agent died: show why
                assert node.done.is_set(), "the worker never answered the valid job"
            finally:
                agent.drain()
                done.cancel()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(running, 10)

    results = [m for m in node.received if isinstance(m, p.JobResult | p.JobError)]
    assert [(type(m).__name__, m.job_id) for m in results] == [("JobResult", JOB.job_id)]
    assert node.connections == 1  # survived on the same connection, no reconnect
    bad = [entry for entry in logs if entry["event"] == "worker.bad_frame"]
    assert [entry["log_level"] for entry in bad] == ["error"] * len(MALFORMED)
    assert all(entry["error"] and entry["bytes"] > 0 for entry in bad)
    assert not any("still here" in str(entry) for entry in logs)  # no prompt text in the logs
