"""TLS in transit: the API serves HTTPS and WSS itself, and workers join over wss:// verifying its certificate."""

from __future__ import annotations

import ssl
import subprocess
import sys

import certifi
import httpx
import pytest

from tests.e2e.processes import FerrymanServer
from tests.e2e.tls import LocalCA


def test_tls_server_answers_https_with_a_worker_joined_over_wss(
    tls_server: FerrymanServer, local_ca: LocalCA
) -> None:
    context = ssl.create_default_context(cafile=str(local_ca.ca_file))
    with httpx.Client(
        base_url=tls_server.url,
        verify=context,
        timeout=30,
        headers={"Authorization": f"Bearer {tls_server.token}"},
    ) as api:
        ready = api.get("/readyz").json()
        job = api.post(
            "/v1/jobs",
            json={
                "task": "chat",
                "model": "echo-1",
                "wait": 10,
                "input": {"messages": [{"role": "user", "content": "over tls"}]},
            },
        ).json()
    assert (ready["regions"]["us"]["workers"], job["status"], job["worker_id"]) == (1, "succeeded", "tls-us")


def test_tls_server_is_refused_by_a_client_that_does_not_trust_its_ca(tls_server: FerrymanServer) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(
            f"{tls_server.url}/healthz", verify=ssl.create_default_context(cafile=certifi.where()), timeout=10
        )


def test_worker_without_the_ca_fails_to_join_over_wss(tls_server: FerrymanServer) -> None:
    env = {"PATH": "/usr/bin:/bin", "FERRYMAN_WORKER_TOKEN": tls_server.worker_token("us")}
    argv = [
        sys.executable,
        "-m",
        "ferryman",
        "worker",
        "--url",
        tls_server.url,
        "--region",
        "us",
        "--backend",
        "echo",
        "--worker-id",
        "untrusting",
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=8)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    assert "error=SSLCertVerificationError" in out
    assert tls_server.connected_workers("us") == 1
