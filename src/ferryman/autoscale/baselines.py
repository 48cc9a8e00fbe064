"""The policies we compare against, each a faithful-in-spirit model of a widely used autoscaler.

All use the same interface and the same executor (fleet_plan), so the simulator compares decision
rules only. Defaults follow each project's documented defaults; the per-worker concurrency target is
`utilization x slots` where the original speaks of per-pod or per-replica requests.

- Knative KPA (knative.dev/docs/serving/autoscaling/kpa-specific/, pkg/autoscaler/scaling/
  autoscaler.go): concurrency averaged over a 60 s stable and a 6 s panic window, target
  utilization 70%, panic when the panic-window need is ≥ 2x the ready pods, never scale down while
  panicking, leave panic after a stable window without the condition; max scale-down rate 2.
- Ray Serve (docs.ray.io, "Advanced Ray Serve Autoscaling"): desired = ⌈ongoing / target_ongoing⌉
  with ongoing = running + queued averaged over look_back_period_s = 30; a change must persist for
  upscale_delay_s = 30 or downscale_delay_s = 600 before it is applied.
- RunPod serverless queue-delay scaler (docs.runpod.io, "Endpoint configurations"): add workers when
  a request has waited more than 4 s; a worker idle for idle_timeout = 5 s stops.
- A fixed fleet sized for the peak minute (what a team without an autoscaler provisions); the
  registry also offers the smallest fixed fleet that meets the SLO, found by replaying the trace.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from .fleet_plan import plan_fleet
from .models import Decision, FleetSignals, WorkerState
from .service_model import ServiceModel
from .staffing import headroom_beta
from .traces import Trace


class _Window:
    """Time-weighted samples over the last `span_s` seconds, averaged."""

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self._samples: deque[tuple[float, float]] = deque()
        self._total = 0.0

    def add(self, now_s: float, value: float) -> float:
        """Add a sample and return the mean of the samples inside the window."""
        self._samples.append((now_s, value))
        self._total += value
        while self._samples[0][0] <= now_s - self.span_s:
            self._total -= self._samples.popleft()[1]
        return self._total / len(self._samples)


def _clamp(workers: int, min_workers: int, max_workers: int) -> int:
    return max(min_workers, min(max_workers, workers))


class KnativeKPA:
    """Knative Pod Autoscaler: stable/panic windows over observed concurrency (running + queued)."""

    name = "knative-kpa"

    def __init__(
        self,
        *,
        slots_per_worker: int,
        target_utilization: float = 0.7,
        stable_window_s: float = 60.0,
        panic_window_s: float = 6.0,
        panic_threshold: float = 2.0,
        max_scale_up_rate: float = 1000.0,
        max_scale_down_rate: float = 2.0,
        min_workers: int = 1,
        max_workers: int = 64,
    ) -> None:
        self.target = slots_per_worker * target_utilization
        self.stable, self.panic = _Window(stable_window_s), _Window(panic_window_s)
        self.stable_window_s = stable_window_s
        self.panic_threshold = panic_threshold
        self.max_up_rate, self.max_down_rate = max_scale_up_rate, max_scale_down_rate
        self.min_workers, self.max_workers = min_workers, max_workers
        self._panic_since_s: float | None = None
        self._panic_peak = 0

    def decide(self, signals: FleetSignals) -> Decision:
        concurrency = signals.running_jobs + signals.queue_depth
        stable_avg = self.stable.add(signals.now_s, concurrency)
        panic_avg = self.panic.add(signals.now_s, concurrency)
        ready = max(1, signals.warm)
        up_limit = math.ceil(self.max_up_rate * ready)
        down_limit = math.floor(ready / self.max_down_rate)
        stable_want = min(max(math.ceil(stable_avg / self.target), down_limit), up_limit)
        panic_want = min(max(math.ceil(panic_avg / self.target), down_limit), up_limit)
        desired = self._apply_panic(signals.now_s, stable_want, panic_want, ready)
        desired = _clamp(desired, self.min_workers, self.max_workers)
        mode = "panic" if self._panic_since_s is not None else "stable"
        reason = (
            f"{mode}: concurrency {stable_avg:.1f} (60s) / {panic_avg:.1f} (6s), target {self.target:.1f}"
        )
        return plan_fleet(signals, desired, reason)

    def _apply_panic(self, now_s: float, stable_want: int, panic_want: int, ready: int) -> int:
        """Knative's panic mode, step for step (autoscaler.go, Scale)."""
        over = panic_want / ready >= self.panic_threshold
        if over:
            self._panic_since_s = now_s
        elif self._panic_since_s is not None and now_s > self._panic_since_s + self.stable_window_s:
            self._panic_since_s, self._panic_peak = None, 0
        if self._panic_since_s is None:
            return stable_want
        # never scale down while panicking
        self._panic_peak = max(self._panic_peak, stable_want, panic_want)
        return self._panic_peak


class RayServe:
    """Ray Serve's default policy: target ongoing requests per replica with up/down delays."""

    name = "ray-serve"

    def __init__(
        self,
        *,
        slots_per_worker: int,
        target_utilization: float = 0.7,
        look_back_period_s: float = 30.0,
        upscale_delay_s: float = 30.0,
        downscale_delay_s: float = 600.0,
        min_workers: int = 1,
        max_workers: int = 64,
    ) -> None:
        self.target_ongoing = slots_per_worker * target_utilization
        self.window = _Window(look_back_period_s)
        self.upscale_delay_s, self.downscale_delay_s = upscale_delay_s, downscale_delay_s
        self.min_workers, self.max_workers = min_workers, max_workers
        self._wanting_since_s: float | None = None
        self._wanting_up = False

    def decide(self, signals: FleetSignals) -> Decision:
        ongoing = self.window.add(signals.now_s, signals.running_jobs + signals.queue_depth)
        want = _clamp(math.ceil(ongoing / self.target_ongoing), self.min_workers, self.max_workers)
        current = signals.active
        desired = current
        if want == current:
            self._wanting_since_s = None
        else:
            up = want > current
            if self._wanting_since_s is None or up != self._wanting_up:
                self._wanting_since_s, self._wanting_up = signals.now_s, up
            delay = self.upscale_delay_s if up else self.downscale_delay_s
            if signals.now_s - self._wanting_since_s >= delay or current == 0:
                desired, self._wanting_since_s = want, None
        reason = f"ongoing {ongoing:.1f} (30s avg) / target {self.target_ongoing:.1f} → {want}"
        return plan_fleet(signals, desired, reason)


class RunPodQueueDelay:
    """RunPod's queue-delay scaler: grow when the oldest job waited too long, stop idle workers."""

    name = "runpod-queue-delay"

    def __init__(
        self,
        *,
        queue_delay_s: float = 4.0,
        idle_timeout_s: float = 5.0,
        min_workers: int = 1,
        max_workers: int = 64,
    ) -> None:
        self.queue_delay_s, self.idle_timeout_s = queue_delay_s, idle_timeout_s
        self.min_workers, self.max_workers = min_workers, max_workers

    def decide(self, signals: FleetSignals) -> Decision:
        desired = signals.active
        if signals.oldest_job_age_s > self.queue_delay_s:
            needed = math.ceil(signals.queue_depth / signals.slots_per_worker)
            desired += max(0, needed - signals.starting)
            reason = f"oldest job waited {signals.oldest_job_age_s:.1f}s > {self.queue_delay_s:.0f}s"
        else:
            idle = sum(
                1
                for w in signals.workers
                if w.state is WorkerState.WARM
                and w.idle_since_s is not None
                and signals.now_s - w.idle_since_s >= self.idle_timeout_s
            )
            desired -= idle if signals.queue_depth == 0 else 0
            reason = f"{idle} workers idle ≥ {self.idle_timeout_s:.0f}s"
        return plan_fleet(signals, _clamp(desired, self.min_workers, self.max_workers), reason)


class FixedFleet:
    """A constant fleet: no scaling at all."""

    def __init__(self, workers: int, *, name: str = "fixed") -> None:
        self.workers, self.name = workers, name

    def decide(self, signals: FleetSignals) -> Decision:
        return plan_fleet(signals, self.workers, f"fixed at {self.workers} workers")


def peak_fleet_size(
    trace: Trace,
    service: ServiceModel,
    *,
    window_s: float = 60.0,
    wait_s: float = 2.0,
    miss: float = 0.01,
) -> int:
    """Capacity planning for the busiest `window_s` of the trace, with the same square-root staffing
    rule our policy uses (Poisson traffic assumed, as a planner without burst data would).

    This reads the whole trace: it is planning with hindsight of the peak.
    """
    if len(trace) == 0:
        return 1
    work_s = service.service_s(trace.prompt_tokens, trace.output_tokens)
    per_window = np.bincount((trace.arrival_s // window_s).astype(np.int64), weights=work_s)
    busiest = int(per_window.argmax())
    load = float(per_window[busiest]) / window_s
    in_window = (trace.arrival_s // window_s).astype(np.int64) == busiest
    service_s = float(work_s[in_window].mean())
    beta = headroom_beta(load=load, peakedness=1.0, service_s=service_s, wait_s=wait_s, miss=miss)
    return max(1, math.ceil((load + beta * math.sqrt(load)) / service.slots))
