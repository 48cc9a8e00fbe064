"""Leases, fences, crashes, cancellation, restarts and deadlines, with real server and worker processes."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

from websockets.sync.client import connect

from tests.e2e.processes import FerrymanServer, wait_until

Make = Callable[..., FerrymanServer]


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "task": "chat",
        "model": "echo-1",
        "input": {"messages": [{"role": "user", "content": text}], **extra},
    }


def _status(server: FerrymanServer, job_id: str) -> dict[str, Any]:
    with server.client() as api:
        body: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        return body


def _wait_status(server: FerrymanServer, job_id: str, *states: str, timeout_s: float = 15) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(
        lambda: (job := _status(server, job_id))["status"] in states and job,
        timeout_s=timeout_s,
        what=f"{job_id} to reach {states}",
        log=server.log,
    )
    return found


def test_cancel_of_a_queued_job_ends_it_before_any_worker_sees_it(make_server: Make) -> None:
    server = make_server()
    server.start_worker(slots=1)
    with server.client() as api:
        blocker = api.post("/v1/jobs", json=_chat("busy", sleep_ms=2000)).json()
        queued = api.post("/v1/jobs", json=_chat("never")).json()
        waiting = api.get(f"/v1/jobs/{queued['id']}").json()
        cancelled = api.post(f"/v1/jobs/{queued['id']}/cancel")
    assert waiting["queue"] == {
        "position": 0,
        "wait_reason": "all_workers_busy",
        "estimated_start_seconds": None,
    }
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["attempts"]) == ("cancelled", 0)
    assert _wait_status(server, blocker["id"], "succeeded")["status"] == "succeeded"
    assert _status(server, queued["id"])["status"] == "cancelled"


def test_cancel_of_a_running_job_stops_it_on_the_worker(make_server: Make) -> None:
    server = make_server()
    server.start_worker(slots=1)
    with server.client() as api:
        job = api.post("/v1/jobs", json=_chat("long", sleep_ms=20_000)).json()
        _wait_status(server, job["id"], "running")
        cancelled = api.post(f"/v1/jobs/{job['id']}/cancel").json()
        # the slot is free again at once: the next job runs while the cancelled one would still be sleeping
        after = api.post("/v1/jobs", json={**_chat("next"), "wait": 5}).json()
    assert (cancelled["status"], cancelled["error"]["code"]) == ("cancelled", "cancelled")
    assert after["status"] == "succeeded"


def test_job_of_a_sigkilled_worker_completes_once_on_another(make_server: Make) -> None:
    server = make_server()
    first = server.start_worker(worker_id="first")
    with server.client() as api:
        job = api.post("/v1/jobs", json=_chat("survive", sleep_ms=1500)).json()
        running = _wait_status(server, job["id"], "running")
        server.start_worker(worker_id="second")
        first.send_signal(signal.SIGKILL)
        done = _wait_status(server, job["id"], "succeeded", "failed")
        listed = api.get("/v1/jobs").json()["data"]
    assert running["attempts"] == 1
    assert (
        done["status"],
        done["attempts"],
        done["worker_id"],
        done["result"]["choices"][0]["message"]["content"],
    ) == ("succeeded", 2, "second", "survive")
    assert [j["id"] for j in listed] == [job["id"]]


def test_late_result_with_an_old_fence_is_rejected(make_server: Make) -> None:
    server = make_server({"FERRYMAN_LEASE_SECONDS": "1", "FERRYMAN_LEASE_CHECK_INTERVAL_SECONDS": "0.1"})
    ws_url = server.url.replace("http://", "ws://") + "/v1/workers/connect"
    frames: list[dict[str, Any]] = []

    def receive_until(predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while True:
            frame = json.loads(stalled.recv(timeout=10))
            frames.append(frame)
            if predicate(frame):
                return frame

    with connect(
        ws_url, additional_headers={"Authorization": f"Bearer {server.worker_token('us')}"}
    ) as stalled:
        stalled.send(
            json.dumps(
                {
                    "type": "register",
                    "worker_id": "stalled",
                    "region": "us",
                    "slots": 1,
                    "models": [{"name": "echo-1", "tasks": ["chat"]}],
                }
            )
        )
        assert json.loads(stalled.recv(timeout=5))["type"] == "registered"
        with server.client() as api:
            job = api.post("/v1/jobs", json=_chat("fenced")).json()
        dispatched = receive_until(lambda f: f["type"] == "job")
        fence = dispatched["fence"]
        assert (dispatched["job_id"], dispatched["attempt"]) == (job["id"], 1)
        # stall past the lease: the node takes the job back (and may offer it again) until a healthy worker has it
        server.start_worker(worker_id="healthy")
        _wait_status(server, job["id"], "succeeded")
        stalled.send(
            json.dumps(
                {
                    "type": "job_result",
                    "job_id": job["id"],
                    "fence": fence,
                    "output": {
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "LATE"}}]
                    },
                }
            )
        )
        refused = receive_until(lambda f: f["type"] == "error")
    assert {"type": "job_cancel", "job_id": job["id"], "fence": fence, "reason": "lease_expired"} in frames
    assert refused == {
        "type": "error",
        "code": "stale_fence",
        "job_id": job["id"],
        "fence": fence,
        "message": "this job is no longer yours; drop it",
    }
    final = _status(server, job["id"])
    assert (final["status"], final["worker_id"], final["result"]["choices"][0]["message"]["content"]) == (
        "succeeded",
        "healthy",
        "fenced",
    )
    assert final["attempts"] >= 2


def test_light_org_is_not_starved_by_a_heavy_one(make_server: Make) -> None:
    server = make_server()
    heavy, light = server.create_org("heavy"), server.create_org("light")
    catalog_seeder = server.start_worker()  # registers the model, then leaves
    catalog_seeder.terminate()
    catalog_seeder.wait(timeout=10)
    with server.client(heavy) as api:
        heavy_ids = [api.post("/v1/jobs", json=_chat(f"h{i}", sleep_ms=30)).json()["id"] for i in range(40)]
    with server.client(light) as api:
        light_id = api.post("/v1/jobs", json=_chat("light", sleep_ms=30)).json()["id"]
    server.start_worker(slots=1)
    with server.client(light) as api:
        light_done = wait_until(
            lambda: (j := api.get(f"/v1/jobs/{light_id}").json())["status"] == "succeeded" and j,
            timeout_s=20,
            what="light job",
        )
    with server.client(heavy) as api:
        heavy_jobs = [api.get(f"/v1/jobs/{i}").json() for i in heavy_ids]
    finished_before = [
        j for j in heavy_jobs if j["finished_at"] and j["finished_at"] < light_done["finished_at"]
    ]
    assert len(finished_before) <= 2


def test_backlog_cap_answers_429_backlog_full(make_server: Make) -> None:
    server = make_server({"FERRYMAN_BACKLOG_CAP": "3"})
    worker = server.start_worker()
    worker.terminate()
    worker.wait(timeout=10)
    with server.client() as api:
        accepted = [api.post("/v1/jobs", json=_chat(f"j{i}")).status_code for i in range(3)]
        refused = api.post("/v1/jobs", json=_chat("one too many"))
        other_class = api.post("/v1/jobs", json={**_chat("batch is its own queue"), "priority": "batch"})
        count = len(api.get("/v1/jobs", params={"limit": 100}).json()["data"])
    assert accepted == [202, 202, 202]
    assert (refused.status_code, refused.json()["error"]["code"], refused.headers["retry-after"]) == (
        429,
        "backlog_full",
        "5",
    )
    assert other_class.status_code == 202
    assert count == 4


def test_restart_keeps_queued_jobs_and_requeues_running_ones(make_server: Make) -> None:
    server = make_server()
    worker = server.start_worker(slots=1)
    with server.client() as api:
        running = api.post("/v1/jobs", json=_chat("was running", sleep_ms=4000)).json()
        queued = api.post("/v1/jobs", json=_chat("was queued")).json()
        _wait_status(server, running["id"], "running")
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    server.kill()
    server.start()
    before = _status(server, running["id"]), _status(server, queued["id"])
    assert [(j["status"], j["queue"]["wait_reason"]) for j in before] == [
        ("queued", "no_worker_for_model"),
        ("queued", "no_worker_for_model"),
    ]
    server.start_worker(slots=2)
    done = [_wait_status(server, j["id"], "succeeded", timeout_s=45) for j in (running, queued)]
    assert [(j["status"], j["attempts"]) for j in done] == [("succeeded", 2), ("succeeded", 1)]


def test_deadline_expires_a_queued_job_and_times_out_a_running_one(make_server: Make) -> None:
    server = make_server({"FERRYMAN_LEASE_CHECK_INTERVAL_SECONDS": "0.1"})
    server.start_worker(slots=1)
    with server.client() as api:
        running = api.post("/v1/jobs", json={**_chat("slow", sleep_ms=10_000), "deadline_seconds": 1}).json()
        queued = api.post("/v1/jobs", json={**_chat("starved"), "deadline_seconds": 0.5}).json()
    timed_out = _wait_status(server, running["id"], "failed")
    expired = _wait_status(server, queued["id"], "expired")
    assert timed_out["error"] == {"code": "timeout", "message": "the job ran past its deadline"}
    assert expired["error"] == {"code": "expired", "message": "no worker started the job before its deadline"}
