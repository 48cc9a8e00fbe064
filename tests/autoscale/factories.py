"""Builders for the autoscaler's values, so each test states only what it is about."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ferryman.autoscale import ArrivalWindow, FleetSignals, ServiceTimeFit, WorkerState, WorkerView
from ferryman.types import Priority, Region

# 10 s per job of the mean size: 0.5 s base + 1000 prompt tokens at 1 ms + 95 output tokens at 0.1 s
FIT = ServiceTimeFit(base_s=0.5, per_prompt_token_s=0.001, per_output_token_s=0.1)


def window(window_s: float, rate_per_s: float) -> ArrivalWindow:
    return ArrivalWindow(window_s, rate_per_s, mean_prompt_tokens=1000.0, mean_output_tokens=85.0)


def worker(
    index: int,
    state: WorkerState = WorkerState.WARM,
    *,
    busy: int = 0,
    slots: int = 16,
    provisioned_s: float = 0.0,
    idle_since_s: float | None = None,
) -> WorkerView:
    idle = idle_since_s if idle_since_s is not None or busy else provisioned_s
    return WorkerView(f"w{index}", state, slots, busy, provisioned_s, idle if busy == 0 else None)


def signals(
    *, rate_per_s: float = 0.0, long_rate_per_s: float | None = None, **overrides: Any
) -> FleetSignals:
    """Steady arrivals at `rate_per_s` (both windows unless `long_rate_per_s`), nothing queued."""
    base = FleetSignals(
        region=Region.US,
        model="llama-2-13b@a100-80gb",
        priority=Priority.INTERACTIVE,
        now_s=1000.0,
        short=window(60.0, rate_per_s),
        long=window(600.0, rate_per_s if long_rate_per_s is None else long_rate_per_s),
        service=FIT,
        demand_peakedness=1.0,
        queue_depth=0,
        queued_prompt_tokens=0,
        queued_output_tokens=0,
        oldest_job_age_s=0.0,
        workers=(),
        provisioning_lag_s=120.0,
        wait_target_s=2.0,
        deadline_s=60.0,
        slots_per_worker=16,
        price_usd_per_worker_hour=1.5,
    )
    return replace(base, **overrides)


def warm_fleet(count: int, *, busy: int = 0) -> tuple[WorkerView, ...]:
    return tuple(worker(i, busy=busy) for i in range(count))
