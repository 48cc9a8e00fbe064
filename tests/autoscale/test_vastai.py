from __future__ import annotations

import asyncio
import dataclasses
import json
import shlex
from typing import Any

import pytest

from ferryman.autoscale.providers import (
    InstanceState,
    OfferQuery,
    ProviderError,
    Quarantine,
    VastAIProvider,
    WorkerLaunch,
)
from ferryman.types import Region

from .vastai_standin import API_KEY, StandinState, offer

OFFERS = [
    offer(101, machine_id=1, geolocation="Frankfurt, DE", dph_total=1.20),
    offer(102, machine_id=2, geolocation="Lisbon, PT", dph_total=0.95),
    offer(103, machine_id=3, geolocation="Texas, US", dph_total=0.80),
    offer(104, machine_id=4, geolocation="Oslo, NO", dph_total=0.70),
    offer(105, machine_id=5, geolocation="Paris, FR", dph_total=2.50),
    offer(106, machine_id=6, geolocation="Vienna, AT", dph_total=1.00, reliability=0.80, reliability2=0.80),
    offer(107, machine_id=7, geolocation="Somewhere", dph_total=0.50),
    offer(108, machine_id=8, geolocation="Madrid, ES", dph_total=0.90, gpu_name="RTX 4090"),
]
EU_QUERY = OfferQuery(gpu_name="A100 SXM4", region=Region.EU, max_price_usd_per_hour=2.0, min_reliability=0.9)
EU_LAUNCH = WorkerLaunch(
    url="wss://eu.ferryman.example/worker", token="wt_secret", region=Region.EU, backend="llamacpp",
    models=("llama-2-13b",), slots=16, worker_id="as-eu-7", enrolment_secret="fme_once",
)  # fmt: skip


@pytest.fixture
def standin(vastai_standin: tuple[str, StandinState]) -> tuple[str, StandinState]:
    base_url, state = vastai_standin
    state.reset(OFFERS)
    return base_url, state


def provider(base_url: str, **kwargs: Any) -> VastAIProvider:
    return VastAIProvider(api_key=API_KEY, image="ghcr.io/ferryman/worker:1", base_url=base_url, **kwargs)


def test_offers_are_eu_only_within_price_and_reliability_cheapest_first(
    standin: tuple[str, StandinState],
) -> None:
    base_url, _ = standin

    async def scenario() -> list[str]:
        vast = provider(base_url)
        try:
            return [o.offer_id for o in await vast.offers(EU_QUERY)]
        finally:
            await vast.aclose()

    # NO is not in the EU, FR is over price, AT is unreliable, the 4090 is the wrong GPU
    assert asyncio.run(scenario()) == ["102", "101"]


def test_offers_send_vastai_search_filters(standin: tuple[str, StandinState]) -> None:
    base_url, state = standin

    async def scenario() -> None:
        vast = provider(base_url, quarantine=Quarantine({"9": "bad GPU"}))
        try:
            await vast.offers(EU_QUERY)
        finally:
            await vast.aclose()

    asyncio.run(scenario())
    method, path, body = state.requests[-1]
    assert (method, path) == ("POST", "/bundles/")
    assert body["gpu_name"] == {"eq": "A100 SXM4"} and body["dph_total"] == {"lte": 2.0}
    assert body["reliability"] == {"gte": 0.9} and body["machine_id"] == {"nin": [9]}
    assert "DE" in body["geolocation"]["in"] and "US" not in body["geolocation"]["in"]
    assert body["order"] == [["dph_total", "asc"]] and body["rentable"] == {"eq": True}


def test_offers_for_us_never_include_eu_machines(standin: tuple[str, StandinState]) -> None:
    base_url, _ = standin

    async def scenario() -> list[str]:
        vast = provider(base_url)
        try:
            return [o.offer_id for o in await vast.offers(OfferQuery(gpu_name="A100 SXM4", region=Region.US))]
        finally:
            await vast.aclose()

    assert asyncio.run(scenario()) == ["103"]


def test_provision_starts_the_worker_with_its_enrolment_secret_never_its_token(
    standin: tuple[str, StandinState],
) -> None:
    base_url, state = standin

    async def scenario() -> None:
        vast = provider(base_url)
        try:
            chosen = (await vast.offers(EU_QUERY))[0]
            instance = await vast.provision(chosen, EU_LAUNCH)
            assert (instance.instance_id, instance.region, instance.state, instance.host_id) == (
                "7001",
                Region.EU,
                InstanceState.STARTING,
                "2",
            )
        finally:
            await vast.aclose()

    asyncio.run(scenario())
    method, path, body = state.requests[-1]
    assert (method, path, body["image"], body["label"]) == (
        "PUT",
        "/asks/102/",
        "ghcr.io/ferryman/worker:1",
        "ferryman:eu:llamacpp",
    )
    argv = shlex.split(body["onstart"].replace('"$FERRYMAN_ENROLMENT_SECRET"', "SECRET"))
    assert argv == [
        "python", "-m", "ferryman", "worker", "--url", "wss://eu.ferryman.example/worker", "--enrolment-secret",
        "SECRET",
        "--region", "eu", "--backend", "llamacpp", "--models", "llama-2-13b", "--slots", "16",
        "--worker-id", "as-eu-7",
    ]  # fmt: skip
    assert body["env"] == {"FERRYMAN_ENROLMENT_SECRET": "fme_once", "FERRYMAN_REGION": "eu"}
    assert "wt_secret" not in json.dumps(body)  # the long-lived worker token never leaves Ferryman


def test_provision_refuses_an_offer_outside_the_workers_region(standin: tuple[str, StandinState]) -> None:
    base_url, _ = standin

    async def scenario() -> None:
        vast = provider(base_url)
        try:
            us_offer = (await vast.offers(OfferQuery(gpu_name="A100 SXM4", region=Region.US)))[0]
            with pytest.raises(ProviderError, match="region 'us', the worker serves 'eu'"):
                await vast.provision(us_offer, EU_LAUNCH)
        finally:
            await vast.aclose()

    asyncio.run(scenario())


def test_provision_reports_an_offer_that_is_gone(standin: tuple[str, StandinState]) -> None:
    base_url, state = standin

    async def scenario() -> None:
        vast = provider(base_url)
        try:
            chosen = (await vast.offers(EU_QUERY))[0]
            state.offers[1]["rented"] = True  # someone else rents it first
            with pytest.raises(ProviderError, match="answered 404: error 404/3603: no_such_ask"):
                await vast.provision(chosen, EU_LAUNCH)
        finally:
            await vast.aclose()

    asyncio.run(scenario())


def test_list_and_destroy_manage_our_instances(standin: tuple[str, StandinState]) -> None:
    base_url, state = standin

    async def scenario() -> tuple[list[str], list[str]]:
        vast = provider(base_url)
        try:
            for chosen in (await vast.offers(EU_QUERY))[:2]:
                await vast.provision(chosen, EU_LAUNCH)
            before = [i.instance_id for i in await vast.list()]
            await vast.destroy("7001")
            await vast.destroy("7001")  # idempotent
            after = [i.instance_id for i in await vast.list()]
            return before, after
        finally:
            await vast.aclose()

    state.instances[9999] = {
        "id": 9999,
        "label": "someone-elses-job",
        "machine_id": 50,
        "actual_status": "running",
    }
    assert asyncio.run(scenario()) == (["7001", "7002"], ["7002"])


def test_unhealthy_host_is_quarantined_and_never_offered_or_rented_again(
    standin: tuple[str, StandinState],
) -> None:
    base_url, _ = standin

    async def scenario() -> tuple[list[str], str]:
        vast = provider(base_url)
        try:
            chosen = (await vast.offers(EU_QUERY))[0]
            instance = await vast.provision(chosen, EU_LAUNCH)
            vast.report_unhealthy(instance.instance_id, "nvidia-smi reports Xid 79")
            remaining = [o.offer_id for o in await vast.offers(EU_QUERY)]
            with pytest.raises(ProviderError, match="host 2 is quarantined: health check failed"):
                await vast.provision(chosen, EU_LAUNCH)
            return remaining, vast.quarantine.to_json()
        finally:
            await vast.aclose()

    remaining, saved = asyncio.run(scenario())
    assert remaining == ["101"]
    assert Quarantine.from_json(saved).hosts == frozenset({"2"})


def test_crash_looping_host_is_quarantined_after_the_limit(standin: tuple[str, StandinState]) -> None:
    base_url, state = standin

    async def scenario() -> frozenset[str]:
        vast = provider(base_url, crash_limit=2)
        try:
            chosen = (await vast.offers(EU_QUERY))[0]
            instance = await vast.provision(chosen, EU_LAUNCH)
            state.instances[int(instance.instance_id)]["actual_status"] = "exited"
            listed = await vast.list()
            await vast.list()  # the same crash is counted once
            assert listed[0].state is InstanceState.EXITED and "2" not in vast.quarantine
            vast.report_crash(instance.instance_id)
            return vast.quarantine.hosts
        finally:
            await vast.aclose()

    assert asyncio.run(scenario()) == frozenset({"2"})


def test_calls_fail_with_provider_error_on_a_bad_api_key(standin: tuple[str, StandinState]) -> None:
    base_url, _ = standin

    async def scenario() -> None:
        vast = VastAIProvider(api_key="wrong", image="x", base_url=base_url)
        try:
            with pytest.raises(ProviderError, match="answered 401: Invalid user key") as caught:
                await vast.list()
            assert not caught.value.retryable
        finally:
            await vast.aclose()

    asyncio.run(scenario())


def test_unreachable_api_is_a_retryable_provider_error() -> None:
    async def scenario() -> None:
        vast = VastAIProvider(api_key=API_KEY, image="x", base_url="http://127.0.0.1:9/api/v0", timeout_s=2.0)
        try:
            with pytest.raises(ProviderError, match="vast.ai GET /instances/ failed") as caught:
                await vast.list()
            assert caught.value.retryable
        finally:
            await vast.aclose()

    asyncio.run(scenario())


def test_provision_refuses_a_launch_without_an_enrolment_secret(standin: tuple[str, StandinState]) -> None:
    base_url, state = standin

    async def scenario() -> str:
        vast = provider(base_url)
        try:
            chosen = (await vast.offers(EU_QUERY))[0]
            with pytest.raises(ProviderError) as caught:
                await vast.provision(chosen, dataclasses.replace(EU_LAUNCH, enrolment_secret=""))
            return str(caught.value)
        finally:
            await vast.aclose()

    assert "enrolment secret" in asyncio.run(scenario())
    assert [r for r in state.requests if r[0] == "PUT"] == []


def test_offers_below_the_gpu_memory_floor_are_not_searched_for_nor_kept(
    standin: tuple[str, StandinState],
) -> None:
    base_url, state = standin
    state.offers[1]["gpu_ram"] = 24576  # Lisbon: 24 GB

    async def scenario() -> list[str]:
        vast = provider(base_url)
        try:
            return [o.offer_id for o in await vast.offers(dataclasses.replace(EU_QUERY, min_gpu_ram_gb=40))]
        finally:
            await vast.aclose()

    assert asyncio.run(scenario()) == ["101"]
    assert state.requests[-1][2]["gpu_ram"] == {"gte": 40 * 1024}
