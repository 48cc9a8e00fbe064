"""Ferryman's scaling policy: queueing-theory sizing for the load one provisioning lag ahead.

    slots = L̂/ρ  +  β·√(z·L̂)  +  W/D
           steady   headroom     drain

L̂ is the offered load (arrival rate x learned mean service time, Little's law) forecast
`provisioning_lag_s` ahead from the trend between two EWMAs; ρ the target utilization; β the
square-root-staffing coefficient (Halfin-Whitt), widened by the measured peakedness z of the demand
(Hayward's approximation for non-Poisson traffic; z = 1 for Poisson); W the queued work and D the
class deadline. Workers = ⌈slots / slots_per_worker⌉, clamped to [min, max] and the spend cap.
Growth is immediate; shrinking waits until the need has stayed lower for a whole cool-down, and then
only drains (see fleet_plan). docs/autoscaler.md has the derivation.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from ferryman.types import Priority

from .fleet_plan import plan_fleet
from .models import Decision, FleetSignals
from .staffing import headroom_beta

# below this many slots of offered load a batch-only model needs no worker at all
_IDLE_LOAD_SLOTS = 1e-3


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Knobs of FerrymanPolicy; the defaults are the ones docs/autoscaler.md measures."""

    target_utilization: float = 1.0
    wait_miss_target: float = 0.01
    cooldown_s: float = 300.0
    min_workers: int = 1
    max_workers: int = 64
    spend_cap_usd_per_hour: float | None = None
    batch_scales_to_zero: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.target_utilization <= 1.0:
            raise ValueError(f"target_utilization must be in (0, 1], got {self.target_utilization}")
        if not 0 <= self.min_workers <= self.max_workers:
            raise ValueError(
                f"need 0 <= min_workers <= max_workers, got {self.min_workers} and {self.max_workers}"
            )


@dataclass(frozen=True, slots=True)
class Sizing:
    """The terms of the sizing formula, kept for the decision's reason and for tests."""

    forecast_load: float
    peakedness: float
    beta: float
    steady_slots: float
    headroom_slots: float
    drain_slots: float

    @property
    def slots(self) -> float:
        return self.steady_slots + self.headroom_slots + self.drain_slots


def forecast_load(signals: FleetSignals) -> float:
    """Offered load (busy slots) expected `provisioning_lag_s` from now; never below the current one.

    An EWMA of a linear ramp lags the ramp by its time constant, so the gap between the short and
    long EWMAs measures the slope: slope = (L_short − L_long) / (τ_long − τ_short). We extrapolate
    the short one by τ_short + lag. Downward trends are not extrapolated: capacity released on a
    guess takes a whole provisioning lag to come back.
    """
    short, long = signals.offered_load(signals.short), signals.offered_load(signals.long)
    gap_s = signals.long.window_s - signals.short.window_s
    if gap_s <= 0:
        return short
    slope = (short - long) / gap_s
    return max(short, short + slope * (signals.short.window_s + signals.provisioning_lag_s))


def size_slots(signals: FleetSignals, config: PolicyConfig) -> Sizing:
    """Slots needed to meet the forecast load and clear the backlog within the class deadline."""
    load = forecast_load(signals)
    peakedness = max(1.0, signals.demand_peakedness)
    beta = headroom_beta(
        load=load,
        peakedness=peakedness,
        service_s=signals.mean_service_s(signals.short),
        wait_s=signals.wait_target_s,
        miss=config.wait_miss_target,
    )
    drain = signals.backlog_work_s / signals.deadline_s if signals.deadline_s > 0 else 0.0
    return Sizing(
        forecast_load=load,
        peakedness=peakedness,
        beta=beta,
        steady_slots=load / config.target_utilization,
        headroom_slots=beta * math.sqrt(peakedness * load),
        drain_slots=drain,
    )


class FerrymanPolicy:
    """Our policy. Keeps only the recent raw targets, to apply the cool-down; otherwise a pure function
    of the signals. One instance per (region, model) queue."""

    name = "ferryman"

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()
        self._recent: deque[tuple[float, int]] = deque()

    def decide(self, signals: FleetSignals) -> Decision:
        sizing = size_slots(signals, self.config)
        floor, ceiling = self._bounds(signals)
        wanted = max(floor, min(ceiling, self._workers_for(signals, sizing)))
        if not self._recent:
            # a fresh policy has seen no need yet: keep what runs for one cool-down before shrinking
            self._recent.append((signals.now_s, signals.active))
        held = self._hold_for_cooldown(signals.now_s, wanted)
        # the cool-down delays shrinking, never the min/max bounds or the spend cap
        desired = min(ceiling, max(wanted, min(held, signals.active)))
        return plan_fleet(signals, desired, _explain(signals, sizing, wanted, desired))

    def _workers_for(self, signals: FleetSignals, sizing: Sizing) -> int:
        if sizing.slots < _IDLE_LOAD_SLOTS and signals.running_jobs + signals.queue_depth == 0:
            return 0
        return math.ceil(sizing.slots / signals.slots_per_worker - 1e-9)

    def _bounds(self, signals: FleetSignals) -> tuple[int, int]:
        """(floor, ceiling) on workers: min/max, zero for batch-only models, and the spend cap."""
        config = self.config
        batch_only = config.batch_scales_to_zero and signals.priority is Priority.BATCH
        floor = 0 if batch_only else config.min_workers
        ceiling = config.max_workers
        if config.spend_cap_usd_per_hour is not None and signals.price_usd_per_worker_hour > 0:
            ceiling = min(ceiling, int(config.spend_cap_usd_per_hour // signals.price_usd_per_worker_hour))
        return min(floor, ceiling), ceiling

    def _hold_for_cooldown(self, now_s: float, wanted: int) -> int:
        """The largest target of the last `cooldown_s` (a sliding-window maximum)."""
        recent = self._recent
        while recent and recent[0][0] < now_s - self.config.cooldown_s:
            recent.popleft()
        while recent and recent[-1][1] <= wanted:
            recent.pop()
        recent.append((now_s, wanted))
        return recent[0][1]


def _explain(signals: FleetSignals, sizing: Sizing, wanted: int, desired: int) -> str:
    held = f", holding {desired} for cool-down" if desired > wanted else ""
    return (
        f"load {signals.offered_load(signals.short):.1f} → {sizing.forecast_load:.1f} slots in "
        f"{signals.provisioning_lag_s:.0f}s, peakedness {sizing.peakedness:.1f}, β {sizing.beta:.2f}: "
        f"{sizing.steady_slots:.1f} steady + {sizing.headroom_slots:.1f} headroom + "
        f"{sizing.drain_slots:.1f} drain = {sizing.slots:.1f} slots → {wanted} workers{held}"
    )
