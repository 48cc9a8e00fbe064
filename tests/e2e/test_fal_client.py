"""The fal-compatible queue API driven with the official `fal-client` over TLS (it speaks only HTTPS)."""

from __future__ import annotations

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
    # fal-client builds https://{FAL_QUEUE_RUN_HOST}/… once at import; point it at Ferryman's /fal mount
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
