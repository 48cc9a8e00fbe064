"""Policies by name, as the CLI and the docs refer to them, built for one trace and service model."""

from __future__ import annotations

from .baselines import FixedFleet, KnativeKPA, RayServe, RunPodQueueDelay, peak_fleet_size
from .models import ScalingPolicy
from .policy import FerrymanPolicy
from .service_model import ServiceModel
from .simulator import SimulationConfig, simulate_trace
from .traces import Trace

OURS = "ferryman"
POLICY_NAMES = (OURS, "knative-kpa", "ray-serve", "runpod-queue-delay", "fixed-peak", "fixed-oracle")
SLO_TARGET = 0.99


def build_policy(
    name: str, *, trace: Trace, service: ServiceModel, config: SimulationConfig | None = None
) -> ScalingPolicy:
    """A fresh policy called `name` (see POLICY_NAMES); raises ValueError for an unknown name.

    The fixed fleets read the trace: `fixed-peak` plans for its busiest minute, `fixed-oracle`
    replays it to find the smallest constant fleet that meets SLO_TARGET (a hindsight bound, not a
    policy anyone could run).
    """
    config = config or SimulationConfig()
    slots = service.slots
    if name == OURS:
        return FerrymanPolicy()
    if name == "knative-kpa":
        return KnativeKPA(slots_per_worker=slots)
    if name == "ray-serve":
        return RayServe(slots_per_worker=slots)
    if name == "runpod-queue-delay":
        return RunPodQueueDelay()
    if name == "fixed-peak":
        return FixedFleet(peak_fleet_size(trace, service, wait_s=config.slo_wait_s), name=name)
    if name == "fixed-oracle":
        return FixedFleet(smallest_fixed_fleet(trace, service, config), name=name)
    raise ValueError(f"unknown policy {name!r}; known: {list(POLICY_NAMES)}")


def smallest_fixed_fleet(
    trace: Trace, service: ServiceModel, config: SimulationConfig, *, max_workers: int = 64
) -> int:
    """The fewest constant workers whose replay meets SLO_TARGET (max_workers if none does)."""
    for workers in range(1, max_workers + 1):
        result = simulate_trace(trace, FixedFleet(workers), service, config)
        if result.waits.slo_attainment >= SLO_TARGET:
            return workers
    return max_workers
