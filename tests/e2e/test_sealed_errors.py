"""A backend's error message is sealed at rest like a payload: a canary it quotes is nowhere in the region
store's bytes, while the job's owner still reads it (unsealed) in `GET /v1/jobs/{id}` and the job list."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.processes import FerrymanServer


def _bytes_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


def test_backend_error_message_is_sealed_in_the_store_and_shown_to_its_owner(
    make_server: Callable[..., FerrymanServer],
) -> None:
    # finished jobs leave memory after 0.2 s, so the reads below come from the store
    server = make_server({"FERRYMAN_EVENT_RETENTION_SECONDS": "0.2"})
    server.start_worker(region="us", worker_id="sealed-us")
    canary = "canary-" + secrets.token_hex(8)
    with server.client() as api:
        failed = api.post(
            "/v1/jobs",
            json={
                "task": "chat",
                "model": "echo-1",
                "wait": 10,
                "input": {
                    "prompt": "hi",
                    "fail": {"code": "invalid_input", "message": f"cannot parse {canary!r} in your prompt"},
                },
            },
        ).json()
        assert failed["status"] == "failed"
        time.sleep(1.0)  # past the retention, and the event sweep has run
        read = api.get(f"/v1/jobs/{failed['id']}").json()
        listed = [
            j
            for j in api.get("/v1/jobs", params={"status": "failed"}).json()["data"]
            if j["id"] == read["id"]
        ]
    # positive control: the owner reads the message, unsealed from the store
    assert read["error"]["code"] == "worker_error"
    assert canary in read["error"]["message"] and canary in listed[0]["error"]["message"]
    region = _bytes_under(server.data_dir / "regions" / "us")
    assert failed["id"].encode() in region  # the job's row is in the bytes scanned
    assert b"the backend failed the job" in region  # what the row keeps in clear
    assert canary.encode() not in region, "a backend error message is stored in plain text"
    assert canary.encode() not in b"".join(p.read_bytes() for p in server.data_dir.glob("global.db*"))
