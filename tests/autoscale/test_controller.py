"""The live autoscaler against a real queue node (SQLite store in tmp_path), a FakeClock and a recording provider."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from ferryman import protocol as p
from ferryman.autoscale import (
    Autoscaler,
    AutoscalerConfig,
    FleetTargets,
    ManagedModel,
    PolicyConfig,
    RegionLink,
    SignalWindows,
    build_autoscaler,
)
from ferryman.autoscale.providers import Instance, InstanceState, Offer, OfferQuery, WorkerLaunch
from ferryman.clock import FakeClock
from ferryman.types import Priority, Region
from tests.dispatch.harness import MODEL, FakeWorker, NodeHarness, open_harness

pytestmark = pytest.mark.anyio

URL = "http://127.0.0.1:9"
EVERY_CLASS = dict.fromkeys(Priority, 2.0)


@dataclass
class RecordingProvider:
    """A Provider test double: rents nothing, records every launch and destroy, offers one machine at `price`."""

    price: float = 0.0
    name: str = "recording"
    launches: list[WorkerLaunch] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        return (Offer("offer-1", self.name, query.gpu_name, 1, self.price, query.region, "host-1", 1.0),)

    async def provision(self, offer: Offer, launch: WorkerLaunch) -> Instance:
        self.launches.append(launch)
        return Instance(
            f"i-{len(self.launches)}",
            self.name,
            launch.region,
            InstanceState.STARTING,
            "host-1",
            offer.price_usd_per_hour,
        )

    async def list(self) -> Sequence[Instance]:
        return ()

    async def destroy(self, instance_id: str) -> None:
        self.destroyed.append(instance_id)


def config(**policy: object) -> AutoscalerConfig:
    knobs: dict[str, object] = {"cooldown_s": 5.0, "min_workers": 1, "max_workers": 2, **policy}
    return AutoscalerConfig(
        models=(ManagedModel(MODEL, "echo", slots=1),),
        policy=PolicyConfig(**knobs),  # type: ignore[arg-type]
        targets=FleetTargets(
            wait_target_s=EVERY_CLASS, deadline_s=dict.fromkeys(Priority, 60.0), initial_lag_s=30.0
        ),
        windows=SignalWindows(short_s=10.0, long_s=100.0),
        interval_s=1.0,
    )


@dataclass
class Rig:
    harness: NodeHarness
    provider: RecordingProvider
    autoscaler: Autoscaler
    registry: CollectorRegistry

    @property
    def clock(self) -> FakeClock:
        return self.harness.clock

    async def tick(self) -> list[str]:
        """One round; the executor's actions, in order."""
        (record,) = await self.autoscaler.tick(Region.US)
        return list(record.actions)

    def join(self, index: int) -> FakeWorker:
        """The worker of the index-th launch registers with the node."""
        return self.harness.attach(self.provider.launches[index].worker_id, slots=1)

    async def finish(self, worker: FakeWorker, *, work_ms: float = 1500.0) -> None:
        job = worker.dispatches()[-1]
        usage = {"prompt_tokens": 10, "completion_tokens": 20}
        self.harness.send(
            worker, p.JobResult(job_id=job.job_id, fence=job.fence, output={}, usage=usage, work_ms=work_ms)
        )
        await self.harness.settle()


@contextlib.asynccontextmanager
async def open_rig(tmp_path: Path, autoscale: AutoscalerConfig, *, price: float = 0.0) -> AsyncIterator[Rig]:
    async with open_harness(tmp_path, clock=FakeClock()) as harness:
        provider = RecordingProvider(price=price)
        registry = CollectorRegistry()
        link = RegionLink(node=harness.node, provider=provider, launch_url=URL, worker_token="fmw_test")
        autoscaler = build_autoscaler({Region.US: link}, autoscale, clock=harness.clock, registry=registry)
        # what start() does, without the timer task: these tests tick by hand
        harness.node.add_observer(autoscaler.fleets[Region.US].observer)
        yield Rig(harness, provider, autoscaler, registry)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path, config()) as made:
        yield made


async def test_autoscaler_provisions_up_to_max_workers_for_a_burst(rig: Rig) -> None:
    for _ in range(8):
        await rig.harness.submit(payload={"prompt": "hello there"})
    actions = await rig.tick()
    launched = [
        (la.url, la.token, la.region, la.backend, la.models, la.slots) for la in rig.provider.launches
    ]
    assert launched == [(URL, "fmw_test", Region.US, "echo", (MODEL,), 1)] * 2
    assert actions == [f"provisioned {la.worker_id} (i-{n})" for n, la in enumerate(rig.provider.launches, 1)]


async def test_autoscaler_counts_provisioned_workers_as_starting_until_they_register(rig: Rig) -> None:
    await rig.harness.submit()
    await rig.tick()
    (record,) = await rig.autoscaler.tick(Region.US)
    signals = record.decision.signals
    assert (signals.starting, signals.warm, signals.queue_depth, record.decision.scale_up) == (1, 0, 1, 0)


async def test_autoscaler_measures_provisioning_lag_from_provision_to_register(rig: Rig) -> None:
    await rig.tick()
    rig.clock.advance(7.0)
    rig.join(0)
    await rig.tick()
    assert rig.autoscaler.fleets[Region.US].lag_s == 7.0


async def test_autoscaler_learns_service_time_from_finished_jobs(rig: Rig) -> None:
    await rig.tick()
    worker = rig.join(0)
    for _ in range(30):
        await rig.harness.submit()
        await rig.finish(worker, work_ms=1500.0)
    fit = rig.autoscaler.fleets[Region.US].traffic(MODEL).service.fit()
    assert fit.predict_s(10, 20) == pytest.approx(1.5, abs=0.05)


async def test_autoscaler_drains_a_busy_worker_and_destroys_it_once_idle(rig: Rig) -> None:
    for _ in range(4):
        await rig.harness.submit()
    await rig.tick()
    first, second = rig.join(0), rig.join(1)
    await rig.finish(first)
    await rig.finish(second)  # both pick up the remaining two jobs
    rig.clock.advance(60.0)  # arrivals decay and the cool-down passes
    drained = rig.provider.launches[0].worker_id
    assert await rig.tick() == [f"draining {drained}"]
    snapshot = rig.harness.node.fleet_snapshot(MODEL)
    assert [(w.worker_id, w.busy_slots, w.in_service) for w in snapshot.workers] == [
        (drained, 1, False), (rig.provider.launches[1].worker_id, 1, True),
    ]  # fmt: skip
    await rig.finish(first)
    assert await rig.tick() == [f"destroyed {drained} (drained)"]
    assert rig.provider.destroyed == ["i-1"]


async def test_autoscaler_never_drains_a_worker_it_did_not_provision(rig: Rig) -> None:
    rig.harness.attach("by-hand-1")
    rig.harness.attach("by-hand-2")
    await rig.tick()
    rig.clock.advance(60.0)
    actions = await rig.tick()
    assert (actions, rig.provider.destroyed) == (["kept by-hand-1: not provisioned by the autoscaler"], [])


async def test_autoscaler_stops_provisioning_at_the_spend_cap(tmp_path: Path) -> None:
    async with open_rig(tmp_path, config(max_workers=5, spend_cap_usd_per_hour=2.5), price=2.0) as rig:
        for _ in range(20):
            await rig.harness.submit()
        actions = await rig.tick()
        assert actions == [f"provisioned {rig.provider.launches[0].worker_id} (i-1)"]
        assert rig.autoscaler.status()[0].spend_usd_per_hour == 2.0


async def test_autoscaler_scales_a_batch_only_model_to_zero(tmp_path: Path) -> None:
    async with open_rig(tmp_path, config()) as rig:
        await rig.harness.submit(priority=Priority.BATCH)
        await rig.tick()
        worker = rig.join(0)
        await rig.finish(worker)
        rig.clock.advance(1500.0)  # until even the long window's trickle needs no headroom
        actions = await rig.tick()
        assert (actions, rig.provider.destroyed) == ([f"destroyed {worker.id} (drained)"], ["i-1"])


async def test_autoscaler_destroys_a_worker_that_never_registers(tmp_path: Path) -> None:
    autoscale = config()
    autoscale = AutoscalerConfig(
        autoscale.models,
        autoscale.policy,
        FleetTargets(EVERY_CLASS, EVERY_CLASS, boot_timeout_s=20.0),
        autoscale.windows,
    )
    async with open_rig(tmp_path, autoscale) as rig:
        await rig.tick()
        rig.clock.advance(21.0)
        actions = await rig.tick()
        lost = rig.provider.launches[0].worker_id
        assert actions[0] == f"destroyed {lost} (boot_timed_out)"


async def test_autoscaler_stop_destroys_every_worker_it_provisioned(rig: Rig) -> None:
    for _ in range(8):
        await rig.harness.submit()
    await rig.tick()
    await rig.autoscaler.stop()
    assert rig.provider.destroyed == ["i-1", "i-2"]


async def test_autoscaler_exports_its_latest_decision_in_metrics(rig: Rig) -> None:
    await rig.tick()
    labels = {"region": "us", "model": MODEL}
    sample = rig.registry.get_sample_value
    assert (
        sample("ferryman_autoscaler_desired_workers", labels),
        sample("ferryman_autoscaler_workers", {**labels, "state": "starting"}),
        sample("ferryman_autoscaler_decisions_total", {**labels, "action": "scale_up"}),
        sample("ferryman_autoscaler_provisioning_lag_seconds", {"region": "us", "provider": "recording"}),
    ) == (1.0, 0.0, 1.0, 30.0)
