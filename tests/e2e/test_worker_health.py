"""A region's workers stay in service under jobs that fail, and a worker id cannot be taken over: real
`ferryman serve` and worker processes, and a rogue worker over a real WebSocket."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.e2e.processes import FerrymanServer, wait_until

Make = Callable[..., FerrymanServer]


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "task": "chat",
        "model": "echo-1",
        "input": {"messages": [{"role": "user", "content": text}], **extra},
    }


def _wait_status(server: FerrymanServer, job_id: str, *states: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        with server.client() as api:
            job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in states else None

    found: dict[str, Any] = wait_until(
        ended, timeout_s=20, what=f"{job_id} to reach {states}", log=server.log
    )
    return found


def _mint_worker_token(server: FerrymanServer, region: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "ferryman", "identity", "worker-token", "--region", region, "--name", "rogue"]
        + ["--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        env=server.env,
        timeout=60,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def _register(ws: ClientConnection, worker_id: str, models: list[str]) -> list[dict[str, Any]]:
    """Send a register frame; return every frame the node sent until it closed the socket or accepted."""
    ws.send(
        json.dumps(
            {
                "type": "register",
                "worker_id": worker_id,
                "region": "us",
                "slots": 1,
                "models": [{"name": m, "tasks": ["chat"]} for m in models],
            }
        )
    )
    frames: list[dict[str, Any]] = []
    try:
        while not frames or frames[-1]["type"] not in ("registered", "job"):
            frames.append(json.loads(ws.recv(timeout=10)))
    except ConnectionClosed:
        pass
    return frames


def test_a_job_with_retryable_errors_does_not_stall_a_lone_worker(make_server: Make) -> None:
    server = make_server()
    server.start_worker(worker_id="lone", slots=1)
    with server.client() as api:
        doomed = api.post("/v1/jobs", json=_chat("doomed", fail={"code": "flaky", "retryable": True})).json()
        failed = _wait_status(server, doomed["id"], "failed", "succeeded")
        after = api.post("/v1/jobs", json={**_chat("after"), "wait": 15})

    ready = httpx.get(f"{server.url}/readyz", timeout=5).json()
    assert (failed["status"], failed["attempts"]) == ("failed", 5)
    assert (after.status_code, after.json()["status"], after.json()["worker_id"]) == (
        200,
        "succeeded",
        "lone",
    )
    assert (ready["regions"]["us"]["healthy_workers"], ready["regions"]["us"]["quarantined_workers"]) == (
        1,
        [],
    )
    assert "us" not in ready["regions_without_healthy_worker"]


def test_a_rogue_token_cannot_take_over_a_connected_workers_id(make_server: Make) -> None:
    server = make_server()
    server.start_worker(worker_id="gpu-1", slots=1)
    rogue_token = _mint_worker_token(server, "us")
    ws_url = server.url.replace("http://", "ws://") + "/v1/workers/connect"
    headers = {"Authorization": f"Bearer {rogue_token}"}

    with connect(ws_url, additional_headers=headers) as rogue:
        taken = _register(rogue, "gpu-1", ["echo-1"])
    with connect(ws_url, additional_headers=headers) as greedy:
        greedy_frames = _register(greedy, "rogue-2", [f"rogue-model-{i}" for i in range(17)])
    with server.client() as api:
        job = api.post("/v1/jobs", json={**_chat("for gpu-1 only"), "wait": 15}).json()
        listed = [m["id"] for m in api.get("/v1/models").json()["data"]]

    assert [(f["type"], f["code"]) for f in taken] == [("error", "worker_id_taken")]
    assert [(f["type"], f["code"]) for f in greedy_frames] == [("error", "protocol_error")]
    assert "at most 16" in greedy_frames[0]["message"]
    assert (job["status"], job["worker_id"]) == ("succeeded", "gpu-1")
    assert [m for m in listed if m.startswith("rogue-model")] == []
    assert server.connected_workers("us") == 1
