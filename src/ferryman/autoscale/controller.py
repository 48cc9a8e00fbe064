"""The live autoscaler: one task per region, each ticking its RegionFleet every `interval_s`.

The app container builds it when autoscaling is on, starts it once the queue nodes run and stops it before they
stop. Every decision is logged as `autoscaler.decided` (info when it changes the fleet, debug otherwise), counted
in /metrics and kept for `GET /v1/admin/fleet`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog
from prometheus_client import CollectorRegistry

from ferryman import dispatch
from ferryman.clock import Clock
from ferryman.types import Region

from .fleet_events import Enroller, FleetEvent, FleetJournal
from .metrics import AutoscalerGauges, AutoscalerMetrics
from .observer import SignalWindows
from .policy import FerrymanPolicy, PolicyConfig
from .providers import OfferQuery, Provider
from .region_fleet import DecisionRecord, FleetStatus, FleetTargets, ManagedModel, RegionFleet

log = structlog.get_logger(__name__)


class Autoscaler:
    """Owns one task per region. `tick(region)` runs one round by hand (tests drive it with a FakeClock)."""

    def __init__(
        self,
        fleets: Mapping[Region, RegionFleet],
        *,
        interval_s: float,
        metrics: AutoscalerMetrics | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.fleets, self.interval_s, self._metrics = dict(fleets), interval_s, metrics
        self._tasks: dict[Region, asyncio.Task[None]] = {}

    def start(self) -> None:
        """Subscribe to each region's node and start ticking. Idempotent."""
        for region, fleet in self.fleets.items():
            if region not in self._tasks:
                fleet.node.add_observer(fleet.observer)
                self._tasks[region] = asyncio.create_task(
                    self._run(region), name=f"autoscaler-{region.value}"
                )

    async def stop(self) -> None:
        """Stop ticking, then destroy every worker the autoscaler provisioned. Idempotent."""
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for fleet in self.fleets.values():
            await fleet.aclose()

    async def tick(self, region: Region) -> list[DecisionRecord]:
        """Decide and act once for every model of `region`; returns the new decisions."""
        records = await self.fleets[region].tick()
        for record in records:
            _log_decision(record)
            if self._metrics is not None:
                self._metrics.count(record)
        return records

    def status(self) -> list[FleetStatus]:
        return [
            FleetStatus(
                region,
                model,
                fleet.provider_of(model).name,
                fleet.lag_s,
                fleet.spend_of(model),
                tuple(history),
                fleet.instances(model),
                fleet.spent_now(model),
            )
            for region, fleet in sorted(self.fleets.items())
            for model, history in sorted(fleet.history.items())
        ]

    def events(self) -> list[FleetEvent]:
        """Recent rents and destroys of every region, oldest first (the audit log keeps all of them)."""
        return sorted((e for fleet in self.fleets.values() for e in fleet.events), key=lambda e: e.at)

    async def _run(self, region: Region) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.tick(region)
            except Exception:
                # a bug in one round must not end autoscaling for the region: log it and try again next tick
                log.exception("autoscaler.tick_failed", region=region)


def _log_decision(record: DecisionRecord) -> None:
    decision, signals = record.decision, record.decision.signals
    level = log.info if decision.changes_fleet else log.debug
    level(
        "autoscaler.decided",
        region=signals.region,
        model=signals.model,
        priority=signals.priority,
        desired_workers=decision.desired_workers,
        scale_up=decision.scale_up,
        resume=list(decision.resume),
        drain=list(decision.drain),
        reason=decision.reason,
        actions=list(record.actions),
        arrival_rate_short_per_s=round(signals.short.rate_per_s, 4),
        arrival_rate_long_per_s=round(signals.long.rate_per_s, 4),
        mean_service_s=round(signals.mean_service_s(signals.short), 4),
        queue_depth=signals.queue_depth,
        oldest_job_age_s=round(signals.oldest_job_age_s, 3),
        starting=signals.starting,
        warm=signals.warm,
        draining=signals.draining,
        busy=signals.busy,
        peakedness=round(signals.demand_peakedness, 3),
        provisioning_lag_s=round(signals.provisioning_lag_s, 3),
    )


@dataclass(frozen=True, slots=True)
class AutoscalerConfig:
    """Everything the live autoscaler is tuned by; the container builds it from Settings."""

    models: tuple[ManagedModel, ...]
    policy: PolicyConfig
    targets: FleetTargets
    windows: SignalWindows = SignalWindows()
    interval_s: float = 2.0


@dataclass(frozen=True, slots=True)
class RegionLink:
    """How a region's new workers are made and reach its node: provider (per model, if they differ), the offer
    filter per model, launch URL, and the credential a worker joins with: the worker token (machines we run) or
    an enroller's one-time secrets (machines we rent)."""

    node: dispatch.QueueNode
    provider: Provider
    launch_url: str
    worker_token: str = field(repr=False)
    model_providers: Mapping[str, Provider] = field(default_factory=dict)
    queries: Mapping[str, OfferQuery] = field(default_factory=dict)
    enroller: Enroller | None = None
    journal: FleetJournal | None = None


def build_autoscaler(
    regions: Mapping[Region, RegionLink],
    config: AutoscalerConfig,
    *,
    clock: Clock,
    registry: CollectorRegistry | None = None,
) -> Autoscaler:
    """An Autoscaler with a fresh FerrymanPolicy per (region, model); its metrics go to `registry` if given."""
    fleets = {
        region: RegionFleet(
            region,
            node=link.node,
            provider=link.provider,
            launch_url=link.launch_url,
            worker_token=link.worker_token,
            models=config.models,
            policies={m.name: FerrymanPolicy(config.policy) for m in config.models},
            targets=config.targets,
            windows=config.windows,
            clock=clock,
            spend_cap_usd_per_hour=config.policy.spend_cap_usd_per_hour,
            model_providers=link.model_providers,
            queries=link.queries,
            enroller=link.enroller,
            journal=link.journal,
        )
        for region, link in regions.items()
    }
    metrics = AutoscalerMetrics(registry) if registry is not None else None
    autoscaler = Autoscaler(fleets, interval_s=config.interval_s, metrics=metrics)
    if registry is not None:
        registry.register(AutoscalerGauges(autoscaler.status))
    return autoscaler
