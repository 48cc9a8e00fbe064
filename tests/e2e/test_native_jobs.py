"""The native jobs API driven over HTTP against a real server and real echo workers."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.e2e.processes import FerrymanServer, wait_until

CHAT = {
    "task": "chat",
    "model": "echo-1",
    "input": {"messages": [{"role": "user", "content": "hello brave new world"}]},
}


def _echo_result(text: str) -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
    }


def test_sync_job_returns_result_usage_and_server_timing(shared_server: FerrymanServer) -> None:
    with shared_server.client() as api:
        resp = api.post("/v1/jobs", json={**CHAT, "wait": 10})
    body = resp.json()
    assert resp.status_code == 200
    assert (body["status"], body["result"], body["usage"], body["attempts"]) == (
        "succeeded",
        _echo_result("hello brave new world"),
        {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8},
        1,
    )
    timing = [part.split(";")[0].strip() for part in resp.headers["server-timing"].split(",")]
    assert timing == ["queue-overhead", "wait", "worker-rtt", "work"]
    assert resp.headers["location"] == f"/v1/jobs/{body['id']}"


def test_async_job_is_accepted_then_polled_to_success(shared_server: FerrymanServer) -> None:
    with shared_server.client() as api:
        created = api.post(
            "/v1/jobs",
            json={
                **CHAT,
                "priority": "async",
                "input": {"messages": [{"role": "user", "content": "later please"}], "sleep_ms": 200},
            },
        )
        assert created.status_code == 202
        assert created.json()["status"] in ("queued", "dispatched", "running")
        job_id = created.json()["id"]
        done = wait_until(
            lambda: (r := api.get(f"/v1/jobs/{job_id}").json())["status"] == "succeeded" and r,
            timeout_s=10,
            what="job to succeed",
        )
    assert (done["id"], done["priority"], done["result"]) == (job_id, "async", _echo_result("later please"))
    assert done["timings"]["work_ms"] >= 200


def test_idempotency_key_returns_same_job_and_conflicts_on_other_body(shared_server: FerrymanServer) -> None:
    with shared_server.client() as api:
        first = api.post("/v1/jobs", json={**CHAT, "wait": 5}, headers={"Idempotency-Key": "key-one"})
        again = api.post("/v1/jobs", json={**CHAT, "wait": 5}, headers={"Idempotency-Key": "key-one"})
        other = api.post(
            "/v1/jobs", json={**CHAT, "priority": "batch"}, headers={"Idempotency-Key": "key-one"}
        )
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "conflict"


def test_stream_over_sse_gives_chunks_then_the_final_job(shared_server: FerrymanServer) -> None:
    events: list[tuple[str, str, Any]] = []
    with shared_server.client() as api, api.stream("POST", "/v1/jobs", json={**CHAT, "stream": True}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        event_id, kind = "", ""
        for line in resp.iter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((event_id, kind, json.loads(line[6:])))
    chunks = "".join(data["content"] for _, kind, data in events if kind == "chunk")
    assert chunks == "hello brave new world"
    assert events[-1][1] == "done"
    assert events[-1][2]["result"] == _echo_result("hello brave new world")
    assert [int(i) for i, _, _ in events] == list(range(int(events[0][0]), int(events[0][0]) + len(events)))


def test_events_resume_after_last_event_id(shared_server: FerrymanServer) -> None:
    with shared_server.client() as api:
        job = api.post(
            "/v1/jobs", json={**CHAT, "stream": False, "wait": 5, "input": {**CHAT["input"], "stream": True}}
        ).json()
        full = api.get(f"/v1/jobs/{job['id']}/events").text
        resumed = api.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "2"}).text
    ids = [int(line[4:]) for line in full.splitlines() if line.startswith("id: ")]
    resumed_ids = [int(line[4:]) for line in resumed.splitlines() if line.startswith("id: ")]
    assert resumed_ids == [i for i in ids if i > 2]
    assert "event: done" in resumed


def test_list_jobs_paginates_with_cursor_and_filters(shared_server: FerrymanServer) -> None:
    token = shared_server.create_org("pager")
    with shared_server.client(token) as api:
        ids = [api.post("/v1/jobs", json={**CHAT, "wait": 5}).json()["id"] for _ in range(5)]
        api.post(
            "/v1/jobs", json={"task": "embeddings", "model": "echo-1", "input": {"input": "x"}, "wait": 5}
        )
        first = api.get("/v1/jobs", params={"limit": 2, "task": "chat"}).json()
        second = api.get(
            "/v1/jobs", params={"limit": 2, "task": "chat", "cursor": first["next_cursor"]}
        ).json()
        third = api.get(
            "/v1/jobs", params={"limit": 2, "task": "chat", "cursor": second["next_cursor"]}
        ).json()
    listed = [j["id"] for page in (first, second, third) for j in page["data"]]
    assert listed == list(reversed(ids))
    assert (first["has_more"], third["has_more"]) == (True, False)


def test_models_lists_regions_and_warm_workers(shared_server: FerrymanServer) -> None:
    with shared_server.client() as api:
        models = api.get("/v1/models").json()["data"]
    echo = next(m for m in models if m["id"] == "echo-1")
    assert echo["regions"] == [
        {"region": "us", "workers": 1, "warm": True, "quarantined_workers": 0},
        {"region": "eu", "workers": 1, "warm": True, "quarantined_workers": 0},
    ]
    assert "chat" in echo["tasks"]


def test_another_orgs_job_is_not_found(shared_server: FerrymanServer) -> None:
    other = shared_server.create_org("outsider")
    with shared_server.client() as api:
        job_id = api.post("/v1/jobs", json={**CHAT, "wait": 5}).json()["id"]
    with shared_server.client(other) as api:
        responses = [
            api.get(f"/v1/jobs/{job_id}"),
            api.post(f"/v1/jobs/{job_id}/cancel"),
            api.get(f"/v1/jobs/{job_id}/events"),
        ]
    assert [r.status_code for r in responses] == [404, 404, 404]
    assert responses[0].json() == {"error": {"code": "not_found", "message": f"job {job_id!r} not found"}}


def test_media_outputs_are_served_as_blobs_to_their_owner_only(shared_server: FerrymanServer) -> None:
    with shared_server.client() as api:
        job = api.post(
            "/v1/jobs", json={"task": "speech", "model": "echo-1", "input": {"input": "hi"}, "wait": 5}
        ).json()
        url = job["result"]["audio"]["url"]
        audio = api.get(url)
    assert (audio.status_code, audio.headers["content-type"], audio.content[:4]) == (
        200,
        "audio/wav",
        b"RIFF",
    )
    assert httpx.get(shared_server.url + url).status_code == 401


def test_metrics_expose_jobs_queue_depth_dispatch_latency_and_workers(shared_server: FerrymanServer) -> None:
    with shared_server.client() as api:
        api.post("/v1/jobs", json={**CHAT, "wait": 5})
        text = httpx.get(shared_server.url + "/metrics").text
    for name in (
        'ferryman_jobs_total{region="us",state="succeeded"}',
        "ferryman_queue_depth",
        "ferryman_dispatch_latency_seconds_bucket",
        'ferryman_workers_connected{region="us"} 1.0',
        'ferryman_worker_free_slots{region="us"}',
        'ferryman_jobs{region="us",state="queued"}',
    ):
        assert name in text


def test_health_and_readiness_answer_without_a_token(shared_server: FerrymanServer) -> None:
    assert httpx.get(shared_server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(shared_server.url + "/readyz").json()
    region = {
        "workers": 1,
        "models": {"warm": ["echo-1"], "starting": []},
        "healthy_workers": 1,
        "quarantined_workers": [],
    }
    assert ready == {
        "status": "ready",
        "regions": {"us": region, "eu": region},
        "regions_without_healthy_worker": [],
    }


def test_wait_returns_202_with_current_state_when_the_job_is_slower(shared_server: FerrymanServer) -> None:
    started = time.monotonic()
    with shared_server.client() as api:
        resp = api.post("/v1/jobs", json={**CHAT, "wait": 0.3, "input": {**CHAT["input"], "sleep_ms": 1500}})
    assert resp.status_code == 202
    assert resp.json()["status"] in ("dispatched", "running")
    assert time.monotonic() - started < 1.4
