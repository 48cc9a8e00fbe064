"""`ferryman up --dev --autoscale` as a real process: a burst of slow echo jobs grows the fleet of local worker
processes, idleness shrinks it back, and the decisions show at /v1/admin/fleet and /metrics."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.processes import FerrymanServer, wait_until

pytestmark = pytest.mark.e2e

# short windows and cool-down so a burst and its decay fit in well under a minute
FAST = {
    "FERRYMAN_REGIONS": '["us"]',
    "FERRYMAN_AUTOSCALE_INTERVAL_SECONDS": "0.5",
    "FERRYMAN_AUTOSCALE_COOLDOWN_SECONDS": "3",
    "FERRYMAN_AUTOSCALE_SHORT_WINDOW_SECONDS": "2",
    "FERRYMAN_AUTOSCALE_LONG_WINDOW_SECONDS": "5",
    "FERRYMAN_AUTOSCALE_MAX_WORKERS": "3",
    "FERRYMAN_AUTOSCALE_BOOT_SECONDS": "3",
}
SLOW_CHAT = {
    "task": "chat",
    "model": "echo-1",
    "input": {"messages": [{"role": "user", "content": "hello"}], "sleep_ms": 2000},
}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerrymanServer]:
    """One server for the module: each test waits for the one-worker steady state it starts from."""
    server = FerrymanServer(
        tmp_path_factory.mktemp("autoscale"),
        env=FAST,
        command="up",
        extra=["--dev", "--autoscale", "--slots", "1"],
    )
    try:
        yield server.start()
    finally:
        server.stop()


def test_ferryman_up_autoscale_grows_for_a_burst_and_shrinks_when_idle(up: FerrymanServer) -> None:
    def workers() -> int:
        return up.connected_workers("us")

    wait_until(lambda: workers() == 1, timeout_s=30, what="the min_workers worker", log=up.log)
    with up.client() as api:
        ids = [api.post("/v1/jobs", json=SLOW_CHAT).json()["id"] for _ in range(12)]
        peak = wait_until(
            lambda: workers() if workers() >= 2 else 0, timeout_s=30, what="scale-up", log=up.log
        )
        wait_until(
            lambda: all(api.get(f"/v1/jobs/{i}").json()["status"] == "succeeded" for i in ids),
            timeout_s=40, what="the burst to finish", log=up.log,
        )  # fmt: skip
        wait_until(lambda: workers() == 1, timeout_s=40, what="scale-down to one worker", log=up.log)
        fleet = api.get("/v1/admin/fleet", params={"decisions": 1000}).json()
    (status,) = fleet["data"]
    actions = [a.split(" ")[0] for d in status["decisions"] for a in d["actions"]]
    assert (fleet["autoscaling"], status["region"], status["model"], status["provider"]) == (
        True, "us", "echo-1", "local",
    )  # fmt: skip
    assert (peak >= 2, actions.count("provisioned") >= 2, "destroyed" in actions) == (True, True, True)
    assert 0 < status["provisioning_lag_seconds"] < 30


def test_admin_fleet_is_forbidden_to_an_org_owner_who_is_not_a_platform_admin(up: FerrymanServer) -> None:
    owner_token = up.create_org("tenant")
    with up.client(owner_token) as api:
        resp = api.get("/v1/admin/fleet")
    assert (resp.status_code, resp.json()["error"]["code"]) == (403, "forbidden")


def test_metrics_export_the_autoscaler_gauges(up: FerrymanServer) -> None:
    wanted = [
        'ferryman_autoscaler_desired_workers{model="echo-1",region="us"} 1.0',
        'ferryman_autoscaler_workers{model="echo-1",region="us",state="warm"} 1.0',
        'ferryman_autoscaler_provisioning_lag_seconds{provider="local",region="us"}',
        'ferryman_autoscaler_decisions_total{action="scale_up",model="echo-1",region="us"}',
    ]

    def missing() -> list[str]:
        text = httpx.get(f"{up.url}/metrics", timeout=5).text
        return [line for line in wanted if line not in text]

    wait_until(
        lambda: missing() == [], timeout_s=30, what="the one-worker steady state in /metrics", log=up.log
    )
