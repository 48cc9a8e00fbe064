"""Start-up tells the truth: models still loading, warm models per region, and workers that die at start.

Real processes throughout: `ferryman serve` or `ferryman up --dev`, echo workers over WebSocket, HTTP from
outside. The echo test double's `load_delay_ms` option stands in for a model that takes seconds to load.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import FerrymanServer, wait_until

CHAT = {"task": "chat", "input": {"messages": [{"role": "user", "content": "bonjour tout le monde"}]}}
# makes every `ferryman worker` die by SIGILL a few seconds in, as a wrongly built llama.cpp does while loading
# the model: the test's job is queued before the first death
SIGILL_AT_START = """\
import os, signal, time
with open("/proc/self/cmdline", "rb") as f:
    if b"worker" in f.read().split(b"\\0"):
        time.sleep(5)
        os.kill(os.getpid(), signal.SIGILL)
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FerrymanServer]:
    made = FerrymanServer(tmp_path / "serve")
    try:
        yield made.start()
    finally:
        made.stop()


def _readyz(server: FerrymanServer) -> dict[str, Any]:
    ready: dict[str, Any] = httpx.get(f"{server.url}/readyz", timeout=5).json()
    return ready


def _job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
    return job


def test_a_job_submitted_while_the_model_loads_waits_as_worker_starting_then_completes(
    server: FerrymanServer,
) -> None:
    server.start_worker(models=("slow-echo",), worker_id="loading", extra=["--option", "load_delay_ms=4000"])
    with server.client() as api:
        submitted = api.post("/v1/jobs", json={**CHAT, "model": "slow-echo"})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        waiting = _job(api, job_id)
        ready = _readyz(server)

        done = wait_until(
            lambda: (job := _job(api, job_id))["status"] == "succeeded" and job,
            timeout_s=30,
            what="the job to finish once the model loaded",
        )

    assert (waiting["status"], waiting["queue"]["wait_reason"]) == ("queued", "worker_starting")
    assert ready["status"] == "starting"
    assert ready["regions"]["us"]["models"] == {"warm": [], "starting": ["slow-echo"]}
    assert ready["regions"]["eu"]["models"] == {"warm": [], "starting": []}
    assert done["result"]["choices"][0]["message"]["content"] == "bonjour tout le monde"
    after = _readyz(server)
    assert (after["status"], after["regions"]["us"]["models"]) == (
        "ready",
        {"warm": ["slow-echo"], "starting": []},
    )


def _up(data_dir: Path, env: dict[str, str] | None = None) -> FerrymanServer:
    return FerrymanServer(data_dir, command="up", extra=["--dev"], env=env).start()


def test_up_prints_one_ready_line_with_a_curl_that_works(tmp_path: Path) -> None:
    up = _up(tmp_path / "up")
    try:
        line = wait_until(
            lambda: next((x for x in up.log.read_text().splitlines() if x.startswith("ready: ")), None),
            timeout_s=60,
            what="the ready line",
            log=up.log,
        )
        ready = _readyz(up)
        curl = line.split(" — try: ", 1)[1]
        answer = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60, check=True)
    finally:
        up.stop()

    assert line.startswith(f"ready: echo-1 warm in us, eu — try: curl -s {up.url}/v1/jobs ")
    assert ready["regions"]["us"]["models"]["warm"] == ready["regions"]["eu"]["models"]["warm"] == ["echo-1"]
    assert '"status":"succeeded"' in answer.stdout.replace(" ", "")
    assert "Say hello in French." in answer.stdout  # echo answers with the README's prompt


def test_up_reports_workers_dying_by_sigill_and_gives_up(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SIGILL_AT_START)
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "FERRYMAN_WORKER_GIVE_UP_AFTER": "2",
    }
    up = _up(tmp_path / "up", env)
    try:
        with up.client() as api:
            job_id = api.post("/v1/jobs", json={**CHAT, "model": "echo-1"}).json()["id"]
            while_starting = _job(api, job_id)["queue"]["wait_reason"]
            wait_until(
                lambda: up.log.read_text().count("not restarting it") == 2,
                timeout_s=60,
                what="the supervisor to give up on both workers",
                log=up.log,
            )
            time.sleep(0.2)
            after = _job(api, job_id)["queue"]["wait_reason"]
        log = up.log.read_text()
    finally:
        up.stop()

    assert while_starting == "worker_starting"
    assert "worker worker-us-echo killed by SIGILL (illegal instruction)" in log
    assert "what to do: the CPU refused an instruction" in log
    assert "restarting in 1 s (quick failure 1 of 2" in log
    assert "2 quick failures in a row" in log
    assert after == "no_worker_for_model"
    assert "ready: " not in log


def test_an_eu_only_install_creates_its_admin_org_in_eu(tmp_path: Path) -> None:
    server = FerrymanServer(tmp_path / "eu-only", env={"FERRYMAN_REGIONS": '["eu"]'}).start()
    try:
        with server.client() as api:
            org = api.get("/v1/org").json()
            ready = _readyz(server)
    finally:
        server.stop()

    assert org["region"] == "eu"
    assert sorted(ready["regions"]) == ["eu"]
