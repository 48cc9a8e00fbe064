"""A worker that sends a result nested 900 levels deep, over a real WebSocket to a real `ferryman serve`: the
frame is refused, the job fails as `invalid_output` at once, and the job stays readable."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from websockets.asyncio.client import connect

from ferryman import protocol as p
from ferryman.types import Task
from tests.e2e.processes import FerrymanServer


def deep(levels: int) -> str:
    """JSON text of an object nested `levels` deep (written out: json.dumps itself cannot nest 5000)."""
    return '{"d":' * (levels - 1) + '{"leaf":true}' + "}" * (levels - 1)


async def _rogue(server: FerrymanServer, levels: int) -> tuple[str, list[p.Message]]:
    url = server.url.replace("http://", "ws://") + "/v1/workers/connect"
    headers = {"Authorization": f"Bearer {server.worker_token('us')}"}
    async with connect(url, additional_headers=headers, max_size=p.MAX_FRAME_BYTES) as ws:
        register = p.Register(
            worker_id=f"rogue-{levels}", region="us", slots=1, models=(p.ModelOffer("echo-1", (Task.CHAT,)),)
        )
        await ws.send(p.encode(register))
        assert isinstance(p.decode_node_message(await ws.recv()), p.Registered)
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=10
        ) as api:
            created = await api.post(
                "/v1/jobs", json={"task": "chat", "model": "echo-1", "input": {"prompt": "x"}}
            )
            assert created.status_code == 202, created.text
            job = p.decode_node_message(await asyncio.wait_for(ws.recv(), 10))
            assert isinstance(job, p.JobDispatch) and job.job_id == created.json()["id"]
            # job_id and fence first, as the agent writes them; the output is what breaks the limits
            head = json.dumps({"type": "job_result", "job_id": job.job_id, "fence": job.fence})
            frame = head[:-1] + ',"output":' + deep(levels) + "}"
            await ws.send(frame)
            replies = [p.decode_node_message(await asyncio.wait_for(ws.recv(), 10))]
        return job.job_id, replies


def test_result_nested_900_deep_fails_its_job_and_the_job_stays_readable(make_server: Any) -> None:
    server: FerrymanServer = make_server()
    for levels in (900, 5000):  # 5000 is past what Python's JSON parser itself can nest
        job_id, replies = asyncio.run(_rogue(server, levels))
        error = replies[0]
        assert isinstance(error, p.ErrorMessage) and error.code == "protocol_error"
        assert (error.job_id, "deeper than 64 levels" in error.message) == (job_id, True)
        with server.client() as api:
            # the failure is committed through the store's writer: wait for it, then read it again and again
            deadline = time.monotonic() + 10
            while (
                api.get(f"/v1/jobs/{job_id}").json().get("status") != "failed" and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            for _ in range(2):  # readable every time, not once
                got = api.get(f"/v1/jobs/{job_id}")
                assert got.status_code == 200, got.text
                body = got.json()
                assert (body["status"], body["error"]["code"], body["result"]) == (
                    "failed",
                    "invalid_output",
                    None,
                )
    assert "Traceback" not in server.log.read_text()
