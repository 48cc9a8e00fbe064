"""Rented machines in the live autoscaler, against a real queue node (SQLite in tmp_path) and a FakeClock: each launch
carries a fresh enrolment secret that is retired with its machine; every rent and destroy reaches the journal with
its price and cost; a machine that never registers, whose worker vanishes or whose worker the node quarantines is
destroyed and its host reported; a region with no eligible offer says so as the jobs' wait reason."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ferryman import protocol as p
from ferryman.autoscale import (
    NO_ELIGIBLE_OFFER,
    Autoscaler,
    AutoscalerConfig,
    Enrolment,
    FleetEvent,
    FleetTargets,
    RegionLink,
    build_autoscaler,
)
from ferryman.autoscale.providers import HostQuarantining, Instance, InstanceState, Offer, OfferQuery
from ferryman.clock import FakeClock
from ferryman.types import JobId, Priority, Region
from tests.dispatch.harness import MODEL, QUIET_NODE, NodeHarness, open_harness

from .test_controller import EVERY_CLASS, URL, RecordingProvider, config

pytestmark = pytest.mark.anyio

STRICT = dataclasses.replace(QUIET_NODE, quarantine_after_failures=1, quarantine_cooldown_seconds=600.0)


@dataclass
class RentingProvider(RecordingProvider):
    """RecordingProvider that keeps a host quarantine, as Vast.ai's does, and can run out of offers."""

    name: str = "renting"
    unhealthy: list[tuple[str, str]] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    sold_out: bool = False
    leftovers: list[Instance] = field(default_factory=list)

    async def list(self) -> Sequence[Instance]:
        return tuple(i for i in self.leftovers if i.instance_id not in self.destroyed)

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        return () if self.sold_out else await super().offers(query)

    def report_unhealthy(self, instance_id: str, reason: str) -> None:
        self.unhealthy.append((instance_id, reason))

    def report_crash(self, instance_id: str) -> None:
        self.crashes.append(instance_id)


@dataclass
class RecordingEnroller:
    issued: list[tuple[Region, str, tuple[str, ...]]] = field(default_factory=list)
    bound: list[tuple[str, str]] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)

    async def issue(self, *, region: Region, worker_id: str, models: Sequence[str]) -> Enrolment:
        self.issued.append((region, worker_id, tuple(models)))
        return Enrolment(f"enr-{len(self.issued)}", f"fme_secret_{len(self.issued)}")

    async def bind(self, enrolment_id: str, instance_id: str) -> None:
        self.bound.append((enrolment_id, instance_id))

    async def retire(self, enrolment_id: str) -> None:
        self.retired.append(enrolment_id)


@dataclass
class Rig:
    harness: NodeHarness
    provider: RentingProvider
    enroller: RecordingEnroller
    journal: list[FleetEvent]
    autoscaler: Autoscaler

    async def tick(self) -> list[str]:
        (record,) = await self.autoscaler.tick(Region.US)
        return list(record.actions)


@contextlib.asynccontextmanager
async def open_rig(tmp_path: Path, autoscale: AutoscalerConfig, *, price: float = 1.5) -> AsyncIterator[Rig]:
    async with open_harness(tmp_path, clock=FakeClock(), settings=STRICT) as harness:
        provider, enroller, journal = RentingProvider(price=price), RecordingEnroller(), []

        async def record(event: FleetEvent) -> None:
            journal.append(event)

        link = RegionLink(
            node=harness.node,
            provider=provider,
            launch_url=URL,
            worker_token="fmw_long_lived",
            enroller=enroller,
            journal=record,
        )
        autoscaler = build_autoscaler({Region.US: link}, autoscale, clock=harness.clock)
        harness.node.add_observer(autoscaler.fleets[Region.US].observer)
        yield Rig(harness, provider, enroller, journal, autoscaler)


def booting(timeout_s: float) -> AutoscalerConfig:
    made = config()
    return dataclasses.replace(
        made, targets=FleetTargets(EVERY_CLASS, dict.fromkeys(Priority, 60.0), boot_timeout_s=timeout_s)
    )


def test_the_renting_provider_is_seen_as_keeping_a_host_quarantine() -> None:
    assert isinstance(RentingProvider(), HostQuarantining) and not isinstance(
        RecordingProvider(), HostQuarantining
    )


async def test_each_launch_carries_its_own_enrolment_secret_bound_to_its_machine(tmp_path: Path) -> None:
    async with open_rig(tmp_path, config()) as rig:
        for _ in range(8):
            await rig.harness.submit()
        await rig.tick()
    launches = rig.provider.launches
    assert [la.enrolment_secret for la in launches] == ["fme_secret_1", "fme_secret_2"]
    assert rig.enroller.issued == [(Region.US, la.worker_id, (MODEL,)) for la in launches]
    assert rig.enroller.bound == [("enr-1", "i-1"), ("enr-2", "i-2")]
    assert all("fme_" not in repr(la) for la in launches)


async def test_a_machine_that_never_registers_is_destroyed_its_host_reported_and_its_secret_retired(
    tmp_path: Path,
) -> None:
    async with open_rig(tmp_path, booting(20.0)) as rig:
        await rig.tick()
        rig.harness.clock.advance(21.0)
        actions = await rig.tick()
    lost = rig.provider.launches[0].worker_id
    assert actions[0] == f"destroyed {lost} (boot_timed_out)"
    assert rig.provider.unhealthy == [("i-1", "its worker did not register within the boot timeout")]
    assert rig.enroller.retired[0] == "enr-1"
    rented, destroyed = rig.journal[:2]
    assert (rented.kind, rented.instance_id, rented.price_usd_per_hour, rented.host_id) == (
        "rented",
        "i-1",
        1.5,
        "host-1",
    )
    assert (destroyed.kind, destroyed.reason, destroyed.held_seconds) == ("destroyed", "boot_timed_out", 21.0)
    assert destroyed.cost_usd == pytest.approx(1.5 * 21.0 / 3600)


async def test_a_machine_whose_worker_vanishes_counts_a_crash_and_is_destroyed(tmp_path: Path) -> None:
    async with open_rig(tmp_path, config()) as rig:
        await rig.harness.submit()
        await rig.tick()
        worker = rig.harness.attach(rig.provider.launches[0].worker_id)
        await rig.tick()
        rig.harness.node.detach(worker.conn)
        actions = await rig.tick()
    assert f"destroyed {worker.id} (worker_lost)" in actions
    assert rig.provider.crashes == ["i-1"]


async def test_a_machine_whose_worker_the_node_quarantines_is_replaced_and_its_host_reported(
    tmp_path: Path,
) -> None:
    async with open_rig(tmp_path, config()) as rig:
        for _ in range(3):
            await rig.harness.submit()
        await rig.tick()
        bad_id, good_id = (la.worker_id for la in rig.provider.launches)
        bad, good = rig.harness.attach(bad_id), rig.harness.attach(good_id)
        await rig.harness.settle()
        job = bad.dispatches()[0]
        rig.harness.send(
            bad, p.JobError(job_id=job.job_id, fence=job.fence, code="oom", message="oom", retryable=True)
        )
        await rig.harness.settle()
        done = good.dispatches()[0]
        rig.harness.send(good, p.JobResult(job_id=done.job_id, fence=done.fence, output={}, usage={}))
        await rig.harness.settle()
        retried = next(d for d in good.dispatches() if d.job_id == job.job_id)
        rig.harness.send(good, p.JobResult(job_id=retried.job_id, fence=retried.fence, output={}, usage={}))
        await rig.harness.settle()
        assert bad.conn.quarantined
        draining = await rig.tick()
        for job_id in list(bad.conn.running):  # what it took before the quarantine, it finishes
            held = bad.dispatch_of(job_id)
            rig.harness.send(bad, p.JobResult(job_id=held.job_id, fence=held.fence, output={}, usage={}))
        await rig.harness.settle()
        destroyed = await rig.tick()
    assert f"draining {bad_id}: worker failing" in draining
    assert f"destroyed {bad_id} (worker_failing)" in draining + destroyed
    assert rig.provider.destroyed == ["i-1"]
    assert rig.provider.unhealthy == [("i-1", "its worker kept failing jobs")]
    assert rig.journal[-1].reason == "worker_failing"


async def test_a_region_without_an_eligible_offer_rents_nothing_and_says_so(tmp_path: Path) -> None:
    async with open_rig(tmp_path, config()) as rig:
        rig.provider.sold_out = True
        job = await rig.harness.submit()
        actions = await rig.tick()
        info = rig.harness.node.queue_info(JobId(job.id))
        assert (info.wait_reason if info else None) == NO_ELIGIBLE_OFFER
        rig.provider.sold_out = False
        await rig.tick()
        starting = rig.harness.node.queue_info(JobId(job.id))
    assert actions == ["no eligible offer from renting in us"]
    assert (rig.provider.launches[0].region, rig.enroller.issued[0][0]) == (Region.US, Region.US)
    assert starting is not None and starting.wait_reason != NO_ELIGIBLE_OFFER


async def test_the_fleet_status_shows_held_machines_with_their_hourly_price_and_what_they_cost(
    tmp_path: Path,
) -> None:
    async with open_rig(tmp_path, config(min_workers=1, max_workers=1)) as rig:
        await rig.tick()
        rig.harness.clock.advance(3600.0)
        (status,) = rig.autoscaler.status()
    (held,) = status.instances
    assert (held.instance_id, held.provider, held.host_id, held.price_usd_per_hour, held.state) == (
        "i-1", "renting", "host-1", 1.5, "starting",
    )  # fmt: skip
    assert status.spent_usd == pytest.approx(1.5) and status.spend_usd_per_hour == 1.5


async def test_machines_a_crashed_process_left_running_are_destroyed_before_the_first_decision(
    tmp_path: Path,
) -> None:
    async with open_rig(tmp_path, config(min_workers=0)) as rig:
        rig.provider.leftovers = [
            Instance("old-1", "renting", Region.US, InstanceState.RUNNING, "host-9", 2.0, "ferryman:us:echo"),
            Instance(
                "old-eu", "renting", Region.EU, InstanceState.RUNNING, "host-8", 2.0, "ferryman:eu:echo"
            ),
        ]
        first = await rig.tick()
        second = await rig.tick()
    assert "destroyed old-1 (orphaned)" in first and not any("orphaned" in a for a in second)
    assert rig.provider.destroyed == ["old-1"]  # another region's machines are that region's fleet's business
    assert (rig.journal[0].kind, rig.journal[0].reason, rig.journal[0].host_id) == (
        "destroyed",
        "orphaned",
        "host-9",
    )
