"""`ferryman serve --autoscale --provider vastai` as a real process against the Vast.ai stand-in (a TEST DOUBLE that
speaks Vast.ai's REST API and "boots" a rented instance by running its start-up command).

A job for a model no worker serves makes the autoscaler rent an EU offer; the instance's start-up command starts a
real `ferryman worker` (echo backend) that trades its one-time enrolment secret for a worker token; the job
completes; once idle the instance is drained and destroyed, and the audit log and /v1/admin/fleet show both, with
the hourly price and the cost. Then, with only non-EU offers (the stand-in even ignores the location filter), an
EU job rents nothing and waits with `no_eligible_offer`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import FerrymanServer, wait_until

from .vastai_standin import API_KEY, StandinState, offer

pytestmark = pytest.mark.e2e

MODEL = "echo-1"
EU_OFFERS = [
    offer(201, machine_id=21, geolocation="Frankfurt, DE", dph_total=1.10),
    offer(202, machine_id=22, geolocation="Texas, US", dph_total=0.40),  # cheaper, but not for an EU job
    offer(203, machine_id=23, geolocation="Oslo, NO", dph_total=0.30),  # Europe, but not the EU
    offer(204, machine_id=24, geolocation="Paris, FR", dph_total=9.00),  # above the price cap
]
NON_EU_OFFERS = [
    offer(301, machine_id=31, geolocation="Texas, US", dph_total=0.40),
    offer(302, machine_id=32, geolocation="Oslo, NO", dph_total=0.30),
    offer(303, machine_id=33, geolocation="Zurich, CH", dph_total=0.50),
]
CHAT = {"task": "chat", "model": MODEL, "input": {"messages": [{"role": "user", "content": "bonjour"}]}}


def _env(base_url: str) -> dict[str, str]:
    return {
        "FERRYMAN_REGIONS": '["eu", "us"]',  # the admin org lives in the first: its jobs are EU jobs
        "FERRYMAN_AUTOSCALE_MODELS": json.dumps({MODEL: "echo"}),
        "FERRYMAN_VASTAI_API_KEY": API_KEY,
        "FERRYMAN_VASTAI_BASE_URL": base_url,
        "FERRYMAN_VASTAI_IMAGE": "ghcr.io/ferryman/worker:test",
        "FERRYMAN_VASTAI_GPU_NAME": "A100 SXM4",
        "FERRYMAN_VASTAI_MAX_PRICE_USD_PER_HOUR": "2.0",
        "FERRYMAN_AUTOSCALE_MIN_WORKERS": "0",
        "FERRYMAN_AUTOSCALE_INTERVAL_SECONDS": "0.5",
        "FERRYMAN_AUTOSCALE_COOLDOWN_SECONDS": "2",
        "FERRYMAN_AUTOSCALE_SHORT_WINDOW_SECONDS": "1",
        "FERRYMAN_AUTOSCALE_LONG_WINDOW_SECONDS": "2",
        "FERRYMAN_AUTOSCALE_BOOT_SECONDS": "3",
        "FERRYMAN_AUTOSCALE_BOOT_TIMEOUT_SECONDS": "40",
        "FERRYMAN_AUTOSCALE_ENROLMENT_TTL_SECONDS": "120",
    }


@pytest.fixture
def standin(vastai_standin: tuple[str, StandinState], tmp_path: Path) -> Iterator[tuple[str, StandinState]]:
    base_url, state = vastai_standin
    state.reset(EU_OFFERS)
    state.boot_dir, state.ignore_geolocation = tmp_path, False
    try:
        yield base_url, state
    finally:
        state.halt_all()
        state.boot_dir, state.ignore_geolocation = None, False


def _puts(state: StandinState) -> list[tuple[str, str, Any]]:
    return [r for r in state.requests if r[0] == "PUT"]


def test_a_job_rents_an_eu_machine_whose_worker_enrols_serves_it_and_is_destroyed_when_idle(
    standin: tuple[str, StandinState], tmp_path: Path
) -> None:
    base_url, state = standin
    server = FerrymanServer(
        tmp_path / "data", env=_env(base_url), command="serve", extra=["--autoscale", "--provider", "vastai"]
    )
    server.start()
    try:
        with server.client() as api:
            job = api.post("/v1/jobs", json=CHAT).json()
            assert job["region"] == "eu", job

            # the autoscaler rents the cheapest eligible offer: in the EU, under the price cap
            (rent,) = wait_until(lambda: _puts(state), timeout_s=20, what="a rent", log=server.log)
            assert rent[1] == "/asks/201/"
            body = rent[2]
            created = json.dumps(body)
            # no long-lived credential in the instance's metadata: only the one-time enrolment secret
            assert "fmw_" not in created and server.worker_token("eu") not in created
            secret = body["env"]["FERRYMAN_ENROLMENT_SECRET"]
            assert secret.startswith("fme_") and secret not in body["onstart"]

            done = wait_until(
                lambda: (r := api.get(f"/v1/jobs/{job['id']}").json())["status"] == "succeeded" and r,
                timeout_s=40, what="the job to succeed on the rented worker", log=server.log,
            )  # fmt: skip
            assert done["result"], done

            # the secret is spent: a replay (a leaked start-up command) gets nothing
            (instance_id,) = state.instances
            worker_id = body["onstart"].split("--worker-id ")[1].split()[0]
            replay = httpx.post(
                f"{server.url}/v1/workers/enrol",
                json={"worker_id": worker_id, "region": "eu"},
                headers={"Authorization": f"Bearer {secret}"},
                timeout=10,
            )
            assert (replay.status_code, replay.json()["error"]["code"]) == (401, "unauthorized")

            # idle past the cool-down: drained, destroyed, and its worker process stopped
            wait_until(
                lambda: not state.instances, timeout_s=40, what="the idle instance destroyed", log=server.log
            )
            assert ("DELETE", f"/instances/{instance_id}/", None) in state.requests

            def settled() -> dict[str, Any] | None:
                view: dict[str, Any] = api.get("/v1/admin/fleet").json()
                return view if len(view["audit"]) == 2 else None

            fleet = wait_until(settled, timeout_s=20, what="the destroy recorded", log=server.log)

        (eu,) = [f for f in fleet["data"] if f["region"] == "eu"]
        assert (eu["provider"], eu["instances"], eu["spend_usd_per_hour"]) == ("vastai", [], 0)
        kinds = [(e["kind"], e["instance_id"], e["price_usd_per_hour"]) for e in fleet["events"]]
        assert kinds == [("destroyed", str(instance_id), 1.10), ("rented", str(instance_id), 1.10)]
        audited = {a["action"]: a for a in fleet["audit"]}
        assert audited["fleet.instance_rented"]["price_usd_per_hour"] == "1.1000"
        destroyed = audited["fleet.instance_destroyed"]
        assert (destroyed["region"], destroyed["reason"], destroyed["host_id"]) == ("eu", "drained", "21")
        assert float(destroyed["cost_usd"]) > 0 and fleet["spent_usd_by_region"]["eu"] > 0
        # the API key is a secret: not in the fleet view, not in the server's log
        assert API_KEY not in json.dumps(fleet)
        server_log = server.log.read_text()
        instance_logs = "".join(p.read_text() for p in tmp_path.glob("instance-*.log"))
        assert API_KEY not in server_log and API_KEY not in instance_logs
        assert "worker.enrolled" in server_log and secret not in server_log + instance_logs

        # second run: only machines outside the EU are offered, and the stand-in even ignores the location filter
        state.reset(NON_EU_OFFERS)
        state.ignore_geolocation = True
        with server.client() as api:
            second = api.post("/v1/jobs", json=CHAT).json()
            waiting = wait_until(
                lambda: (r := api.get(f"/v1/jobs/{second['id']}").json())["queue"]
                and r["queue"]["wait_reason"] == "no_eligible_offer"
                and r,
                timeout_s=20, what="the no_eligible_offer wait reason", log=server.log,
            )  # fmt: skip
            assert waiting["status"] == "queued"
            searched = [r for r in state.requests if r[0] == "POST"]
            assert searched, "the autoscaler searched for an offer"
            assert _puts(state) == [], "nothing is rented outside the EU for an EU job"
            api.post(f"/v1/jobs/{second['id']}/cancel")
    finally:
        server.stop()
