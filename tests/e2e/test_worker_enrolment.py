"""A real `ferryman worker` that starts with a one-time enrolment secret (as a rented machine does) against a real
`ferryman serve`: it trades the secret for a worker token and registers; a spent secret starts nothing; and the
token it got may register only the worker id and models it was enrolled for."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ferryman.config import Settings
from ferryman.container import open_accounts
from ferryman.types import Region
from tests.e2e.processes import FerrymanServer, tail, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerrymanServer]:
    running = FerrymanServer(tmp_path_factory.mktemp("enrol"), env={"FERRYMAN_REGIONS": '["us"]'})
    try:
        yield running.start()
    finally:
        running.stop()


def issue(server: FerrymanServer, worker_id: str, model: str = "echo-1") -> str:
    """An enrolment secret, issued on the data dir as the autoscaler would (beside the running server)."""

    async def main() -> str:
        async with open_accounts(Settings(data_dir=server.data_dir)) as accounts:
            issued = await accounts.enrolments.issue(
                region=Region.US, worker_id=worker_id, models=(model,), ttl_seconds=300
            )
            return issued.secret

    return asyncio.run(main())


def worker(server: FerrymanServer, worker_id: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "ferryman", "worker", "--url", server.url, "--region", "us"]
    argv += ["--backend", "echo", "--models", "echo-1", "--worker-id", worker_id, *args]
    clean = {
        k: v for k, v in server.env.items() if k not in {"FERRYMAN_WORKER_TOKEN", "FERRYMAN_ENROLMENT_SECRET"}
    }
    log = server.data_dir / f"worker-{worker_id}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**clean, **env})
    server.workers.append(proc)
    return proc


def exit_of(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> int:
    return proc.wait(timeout_s)


def test_a_worker_enrols_with_its_secret_and_registers_and_the_spent_secret_starts_nothing(
    server: FerrymanServer,
) -> None:
    secret = issue(server, "as-us-1")
    before = server.connected_workers("us")

    first = worker(server, "as-us-1", FERRYMAN_ENROLMENT_SECRET=secret)
    wait_until(lambda: server.connected_workers("us") > before, timeout_s=30, what="the enrolled worker")
    replay = worker(server, "as-us-1", FERRYMAN_ENROLMENT_SECRET=secret)

    assert exit_of(replay) == 1
    log = (server.data_dir / "worker-as-us-1.log").read_text()
    assert "enrolment refused: HTTP 401" in log and secret not in log
    assert first.poll() is None, tail(server.data_dir / "worker-as-us-1.log")
    chat = {
        "task": "chat",
        "model": "echo-1",
        "wait": 20,
        "input": {"messages": [{"role": "user", "content": "hi"}]},
    }
    with server.client() as api:
        job = api.post("/v1/jobs", json=chat).json()
    assert job["status"] == "succeeded", job


def test_an_enrolled_token_may_register_only_its_worker_id_and_models(server: FerrymanServer) -> None:
    secret = issue(server, "as-us-2")
    token = httpx.post(
        f"{server.url}/v1/workers/enrol",
        json={"worker_id": "as-us-2", "region": "us"},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    ).json()["token"]

    other_id = worker(server, "as-us-9", "--token", token)
    other_model = worker(server, "as-us-2", "--token", token, "--models", "secret-model")

    assert (exit_of(other_id), exit_of(other_model)) == (1, 1)
    logs = [(server.data_dir / f"worker-{w}.log").read_text() for w in ("as-us-9", "as-us-2")]
    refusals = " ".join(" ".join(logs).split())  # the console wraps long lines
    assert "forbidden: this worker token is bound to worker id as-us-2, not as-us-9" in refusals
    assert "may not offer ['secret-model']" in refusals


def test_a_worker_with_an_enrolment_secret_needs_its_worker_id(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ferryman", "worker", "--url", "http://127.0.0.1:9", "--region", "us",
         "--backend", "echo", "--enrolment-secret", "fme_x"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert out.returncode == 2 and "--worker-id" in out.stderr
