"""The fal-compatible queue API driven with the official `fal-client` over TLS (it speaks only HTTPS)."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator

import fal_client
import fal_client.client
import httpx
import pytest

from tests.e2e.processes import FerrymanServer
from tests.e2e.tls import LocalCA


@pytest.fixture
def client(
    tls_server: FerrymanServer, local_ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> Iterator[fal_client.SyncClient]:
    # fal-client builds https://{FAL_RUN_HOST}/… and https://{FAL_QUEUE_RUN_HOST}/… once at import; point both
    # at Ferryman's /fal mount (test_fal_docs.py runs the documented environment variables themselves)
    monkeypatch.setattr(fal_client.client, "RUN_URL_FORMAT", f"{tls_server.url}/fal/run/")
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", f"{tls_server.url}/fal/")
    monkeypatch.setenv("SSL_CERT_FILE", str(local_ca.ca_file))
    sdk = fal_client.SyncClient(key=tls_server.token)
    yield sdk
    sdk._client.close()


def test_subscribe_returns_images_as_signed_urls(client: fal_client.SyncClient, local_ca: LocalCA) -> None:
    result = client.subscribe(
        "echo-1",
        arguments={"prompt": "a ferry", "image_size": "square", "num_images": 2, "seed": 7},
        with_logs=True,
    )
    images = result["images"]
    trust = ssl.create_default_context(cafile=str(local_ca.ca_file))
    fetched = [httpx.get(i["url"], verify=trust, timeout=10).content for i in images]
    assert ([(i["width"], i["height"], i["content_type"]) for i in images], result["seed"], fetched) == (
        [(1, 1, "application/octet-stream")] * 2,
        7,
        [b"echo image 0", b"echo image 1"],
    )


def test_run_answers_the_output_itself(client: fal_client.SyncClient, tls_server: FerrymanServer) -> None:
    result = client.run("echo-1", arguments={"prompt": "a ferry", "image_size": "square", "seed": 3})
    job_id = result["images"][0]["url"].split("/")[5]  # /media/{org}/{job}/{blob}
    job = tls_server_job(tls_server, job_id)
    assert (len(result["images"]), result["seed"], job["status"], job["priority"]) == (
        1,
        3,
        "succeeded",
        "interactive",
    )


def test_run_errors_raise_with_fal_detail(client: fal_client.SyncClient) -> None:
    with pytest.raises(fal_client.client.FalClientHTTPError) as unknown:
        client.run("no-such-model", arguments={"prompt": "x"})
    with pytest.raises(fal_client.client.FalClientHTTPError) as invalid:
        client.run("echo-1", arguments={"prompt": ""})
    assert [
        (e.value.status_code, "x-fal-request-id" in e.value.response.headers) for e in (unknown, invalid)
    ] == [
        (404, False),
        (400, False),
    ]


def tls_server_job(server: FerrymanServer, job_id: str) -> dict[str, object]:
    trust = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    with httpx.Client(verify=trust, timeout=10, headers={"Authorization": f"Bearer {server.token}"}) as api:
        job: dict[str, object] = api.get(f"{server.url}/v1/jobs/{job_id}").json()
    return job


def test_submit_then_status_then_result(client: fal_client.SyncClient) -> None:
    handle = client.submit(
        "echo-1", arguments={"prompt": "a ferry", "image_size": {"width": 64, "height": 64}, "sleep_ms": 50}
    )
    statuses = {type(s).__name__ for s in handle.iter_events(with_logs=True, interval=0.05)}
    assert (statuses <= {"Queued", "InProgress", "Completed"}, len(handle.get()["images"])) == (True, 1)


def test_cancel_stops_a_queued_request(client: fal_client.SyncClient) -> None:
    handle = client.submit("echo-1", arguments={"prompt": "slow", "sleep_ms": 3000})
    handle.cancel()
    status = handle.status()
    with pytest.raises(fal_client.client.FalClientHTTPError) as info:
        handle.get()
    assert (type(status).__name__, info.value.status_code) == ("Completed", 400)


def test_errors_raise_with_fal_detail(client: fal_client.SyncClient, tls_server: FerrymanServer) -> None:
    with pytest.raises(fal_client.client.FalClientHTTPError) as unknown:
        client.submit("no-such-model", arguments={"prompt": "x"})
    stranger = fal_client.SyncClient(key="fm_nope")
    with pytest.raises(fal_client.client.FalClientHTTPError) as unauthenticated:
        stranger.submit("echo-1", arguments={"prompt": "x"})
    stranger._client.close()
    assert [(e.value.status_code, e.value.message) for e in (unknown, unauthenticated)] == [
        (404, "model 'no-such-model' is not served in region us"),
        (401, "invalid, expired or revoked API token, or its member was disabled"),
    ]
