from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from ferryman.autoscale.providers import InstanceState, LocalProvider, OfferQuery, ProviderError, WorkerLaunch
from ferryman.autoscale.providers.local import DEFAULT_WORKER_COMMAND
from ferryman.types import Region

SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]
LAUNCH = WorkerLaunch(
    url="ws://127.0.0.1:8000/worker",
    token="wt_x",
    region=Region.US,
    backend="echo",
    models=("a", "b"),
    slots=2,
    worker_id="as-us-1",
)


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z" if Path(f"/proc/{pid}").exists() else True


def test_local_provider_spawns_lists_and_destroys_a_worker_process(tmp_path: Path) -> None:
    async def scenario() -> None:
        local = LocalProvider(command=SLEEPER, log_dir=tmp_path)
        (offer,) = await local.offers(OfferQuery(gpu_name="any", region=Region.US))
        instance = await local.provision(offer, LAUNCH)
        (listed,) = await local.list()
        pid = int(listed.label.removeprefix("pid "))
        assert (listed.instance_id, listed.state, is_running(pid)) == (
            instance.instance_id,
            InstanceState.RUNNING,
            True,
        )
        await local.destroy(instance.instance_id)
        assert (await local.list(), is_running(pid)) == ((), False)
        await local.destroy(instance.instance_id)  # idempotent

    asyncio.run(scenario())
    assert (tmp_path / "local-1.log").exists()


def test_local_provider_fills_the_worker_command_line(tmp_path: Path) -> None:
    echo = [sys.executable, "-c", "import sys; print(' '.join(sys.argv[1:]))", *DEFAULT_WORKER_COMMAND[1:]]

    async def scenario() -> None:
        local = LocalProvider(command=echo, log_dir=tmp_path)
        (offer,) = await local.offers(OfferQuery(gpu_name="any", region=Region.US))
        await local.provision(offer, LAUNCH)
        await asyncio.sleep(0)
        for _ in range(200):
            if (await local.list())[0].state is InstanceState.EXITED:
                break
            await asyncio.sleep(0.05)
        await local.aclose()

    asyncio.run(scenario())
    assert (tmp_path / "local-1.log").read_text().split() == [
        "-m", "ferryman", "worker", "--url", "ws://127.0.0.1:8000/worker", "--token", "wt_x",
        "--region", "us", "--backend", "echo", "--models", "a,b", "--slots", "2", "--worker-id", "as-us-1",
    ]  # fmt: skip


def test_local_provider_kills_a_worker_that_ignores_sigterm() -> None:
    stubborn = [
        sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(30)",
    ]  # fmt: skip

    async def scenario() -> None:
        local = LocalProvider(command=stubborn, stop_timeout_s=0.5)
        (offer,) = await local.offers(OfferQuery(gpu_name="any", region=Region.US))
        instance = await local.provision(offer, LAUNCH)
        await asyncio.sleep(0.5)  # let it install the handler
        await local.destroy(instance.instance_id)
        assert await local.list() == ()

    asyncio.run(scenario())


def test_local_provider_offers_nothing_outside_its_region() -> None:
    async def scenario() -> None:
        local = LocalProvider(command=SLEEPER, region=Region.US)
        assert await local.offers(OfferQuery(gpu_name="any", region=Region.EU)) == ()
        eu_launch = WorkerLaunch(url="ws://x", token="t", region=Region.EU, backend="echo", models=("a",))
        (offer,) = await local.offers(OfferQuery(gpu_name="any", region=Region.US))
        with pytest.raises(ProviderError, match="local workers serve region 'us', not 'eu'"):
            await local.provision(offer, eu_launch)

    asyncio.run(scenario())


def test_local_provider_reports_a_command_that_cannot_start() -> None:
    async def scenario() -> None:
        local = LocalProvider(command=["/nonexistent/ferryman-worker"])
        (offer,) = await local.offers(OfferQuery(gpu_name="any", region=Region.US))
        with pytest.raises(ProviderError, match="cannot start worker '/nonexistent/ferryman-worker'"):
            await local.provision(offer, LAUNCH)

    asyncio.run(scenario())
