"""Bad input gets the right error envelope and leaves nothing stored."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.processes import FerrymanServer

CHAT = {"task": "chat", "model": "echo-1", "input": {"messages": [{"role": "user", "content": "hi"}]}}


@pytest.fixture(scope="module")
def fresh_org(shared_server: FerrymanServer) -> str:
    return shared_server.create_org("errors")


@pytest.fixture
def api(shared_server: FerrymanServer, fresh_org: str) -> Iterator[httpx.Client]:
    with shared_server.client(fresh_org) as client:
        yield client
        assert client.get("/v1/jobs").json()["data"] == [], "a refused request left a job behind"


def _error(resp: httpx.Response) -> tuple[int, str]:
    return resp.status_code, resp.json()["error"]["code"]


def test_malformed_json_is_invalid_json(api: httpx.Client) -> None:
    resp = api.post("/v1/jobs", content=b'{"task": "chat", ', headers={"content-type": "application/json"})
    assert resp.json() == {"error": {"code": "invalid_json", "message": "request body is not valid JSON"}}
    assert resp.status_code == 400


def test_wrong_types_are_a_validation_error_naming_the_field(api: httpx.Client) -> None:
    resp = api.post("/v1/jobs", json={**CHAT, "input": "not an object"})
    assert _error(resp) == (400, "validation_error")
    assert resp.json()["error"]["message"].startswith("input:")
    assert resp.json()["error"]["details"]["errors"][0]["loc"] == ["input"]


def test_unknown_task_is_a_validation_error(api: httpx.Client) -> None:
    assert _error(api.post("/v1/jobs", json={**CHAT, "task": "dance"})) == (400, "validation_error")


def test_unknown_field_is_a_validation_error(api: httpx.Client) -> None:
    assert _error(api.post("/v1/jobs", json={**CHAT, "colour": "blue"})) == (400, "validation_error")


def test_unknown_model_is_not_found(api: httpx.Client) -> None:
    resp = api.post("/v1/jobs", json={**CHAT, "model": "no-such-model"})
    assert _error(resp) == (404, "not_found")
    assert "GET /v1/models" in resp.json()["error"]["message"]


def test_body_over_the_limit_is_payload_too_large(api: httpx.Client) -> None:
    big = {**CHAT, "input": {"messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}}
    assert _error(api.post("/v1/jobs", json=big)) == (413, "payload_too_large")


def test_body_over_the_limit_without_content_length_is_refused(api: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(6):
            yield b" " * (1024 * 1024)

    assert _error(api.post("/v1/jobs", content=chunks())) == (413, "payload_too_large")


def test_missing_token_is_unauthorized(shared_server: FerrymanServer, api: httpx.Client) -> None:
    resp = httpx.post(shared_server.url + "/v1/jobs", json=CHAT)
    assert _error(resp) == (401, "unauthorized")


def test_wrong_token_is_unauthorized(shared_server: FerrymanServer, api: httpx.Client) -> None:
    with shared_server.client("fm_" + "A" * 43) as other:
        assert _error(other.post("/v1/jobs", json=CHAT)) == (401, "unauthorized")
    with shared_server.client("not-even-a-token") as other:
        assert _error(other.get("/v1/jobs")) == (401, "unauthorized")


def test_worker_token_cannot_call_the_api(shared_server: FerrymanServer, api: httpx.Client) -> None:
    with shared_server.client(shared_server.worker_token("us")) as worker:
        assert _error(worker.get("/v1/jobs")) == (401, "unauthorized")


def test_webhook_to_a_private_address_is_refused(api: httpx.Client) -> None:
    for url in (
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest",
        "http://10.0.0.1/x",
        "ftp://example.com",
    ):
        resp = api.post("/v1/jobs", json={**CHAT, "webhook_url": url})
        assert _error(resp) == (400, "validation_error"), url


def test_cancel_of_a_finished_job_is_a_conflict(shared_server: FerrymanServer) -> None:
    with shared_server.client() as api:
        job = api.post("/v1/jobs", json={**CHAT, "wait": 5}).json()
        resp = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert _error(resp) == (409, "conflict")


def test_bad_query_parameters_are_validation_errors(api: httpx.Client) -> None:
    assert _error(api.get("/v1/jobs", params={"limit": 0})) == (400, "validation_error")
    assert _error(api.get("/v1/jobs", params={"status": "sleeping"})) == (400, "validation_error")
    assert _error(api.get("/v1/jobs", params={"cursor": "garbage"})) == (400, "validation_error")


def test_unknown_job_and_route_are_not_found(api: httpx.Client) -> None:
    assert _error(api.get("/v1/jobs/job_us_nope")) == (404, "not_found")
    assert _error(api.get("/v1/jobs/nonsense")) == (404, "not_found")
    assert _error(api.get("/v1/nowhere")) == (404, "not_found")
