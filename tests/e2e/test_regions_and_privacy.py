"""Region pinning and encryption at rest: an EU job leaves no byte in the US store, nothing is plain text."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.e2e.processes import FerrymanServer


def _bytes_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


def test_eu_job_leaves_no_byte_in_the_us_store_and_nothing_readable_in_the_eu_one(
    shared_server: FerrymanServer,
) -> None:
    eu_token = shared_server.create_org("eu-customer", region="eu")
    marker = "eu-secret-" + secrets.token_hex(8)
    with shared_server.client(eu_token) as api:
        chat = api.post(
            "/v1/jobs",
            json={
                "task": "chat",
                "model": "echo-1",
                "wait": 10,
                "input": {"messages": [{"role": "user", "content": f"{marker} please keep me in Europe"}]},
            },
        ).json()
        speech = api.post(
            "/v1/jobs", json={"task": "speech", "model": "echo-1", "wait": 10, "input": {"input": marker}}
        ).json()
    assert (chat["status"], chat["region"], speech["status"]) == ("succeeded", "eu", "succeeded")
    assert chat["id"].startswith("job_eu_")
    assert chat["result"]["choices"][0]["message"]["content"] == f"{marker} please keep me in Europe"
    us_bytes = _bytes_under(shared_server.data_dir / "regions" / "us")
    eu_bytes = _bytes_under(shared_server.data_dir / "regions" / "eu")
    global_bytes = b"".join(p.read_bytes() for p in shared_server.data_dir.glob("global.db*"))
    for job_id in (chat["id"], speech["id"]):
        assert job_id.encode() not in us_bytes
        assert job_id.encode() in eu_bytes  # the job row and blob are there, sealed
        assert job_id.encode() not in global_bytes
    for haystack in (us_bytes, eu_bytes, global_bytes):
        assert marker.encode() not in haystack, "a payload or result is stored in plain text"
    assert list((shared_server.data_dir / "regions" / "eu" / "blobs").rglob(f"{speech['id']}.*"))
    assert not list((shared_server.data_dir / "regions" / "us" / "blobs").rglob(f"{speech['id']}.*"))
