"""What one simulation measured: GPU-hours, cost, queue waits and the SLO, plus series for plots."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class WaitSummary:
    """Queue wait (arrival → first slot) percentiles and the share of jobs within the SLO.

    A job never served (the run stopped with it queued) counts as an infinite wait.
    """

    p50_s: float
    p95_s: float
    p99_s: float
    slo_wait_s: float
    slo_attainment: float


def summarize_waits(wait_s: npt.NDArray[np.float64], slo_wait_s: float) -> WaitSummary:
    """Percentiles by the 'higher' rule, so a reported p99 is a wait some job actually had."""
    if wait_s.size == 0:
        return WaitSummary(0.0, 0.0, 0.0, slo_wait_s, 1.0)
    p50, p95, p99 = (float(v) for v in np.percentile(wait_s, [50, 95, 99], method="higher"))
    return WaitSummary(p50, p95, p99, slo_wait_s, float(np.mean(wait_s <= slo_wait_s)))


@dataclass(frozen=True, slots=True, eq=False)
class Timeline:
    """Per policy tick (from time 0): workers counting toward capacity, warm, billed, queued jobs."""

    time_s: npt.NDArray[np.float64]
    active_workers: npt.NDArray[np.float64]
    warm_workers: npt.NDArray[np.float64]
    billed_workers: npt.NDArray[np.float64]
    queue_depth: npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class SimulationResult:
    """One policy replayed over one trace. `arrival_s` and `wait_s` are per measured job."""

    policy: str
    trace: str
    service: str
    jobs: int
    gpu_hours: float
    cost_usd: float
    waits: WaitSummary
    scale_events: int
    workers_provisioned: int
    peak_workers: int
    arrival_s: npt.NDArray[np.float64]
    wait_s: npt.NDArray[np.float64]
    timeline: Timeline

    def summary(self) -> dict[str, float | int]:
        """The headline numbers, JSON-ready (`--json` prints these per policy)."""
        return {
            "gpu_hours": round(self.gpu_hours, 3),
            "cost_usd": round(self.cost_usd, 2),
            "slo_attainment": round(self.waits.slo_attainment, 5),
            "p50_wait_s": _finite(self.waits.p50_s),
            "p95_wait_s": _finite(self.waits.p95_s),
            "p99_wait_s": _finite(self.waits.p99_s),
            "scale_events": self.scale_events,
            "workers_provisioned": self.workers_provisioned,
            "peak_workers": self.peak_workers,
            "jobs": self.jobs,
        }


def _finite(seconds: float) -> float:
    # JSON has no infinity; a wait that never ended is reported as -1
    return round(seconds, 3) if np.isfinite(seconds) else -1.0


@dataclass(frozen=True, slots=True)
class Comparison:
    """Ours against the best baseline: the cheapest one meeting the SLO target, else the one with
    the best SLO attainment. `gpu_hours_saved` is a fraction of the baseline's GPU-hours."""

    ours: SimulationResult
    baseline: SimulationResult
    slo_target: float

    @property
    def gpu_hours_saved(self) -> float:
        if self.baseline.gpu_hours <= 0:
            return 0.0
        return 1.0 - self.ours.gpu_hours / self.baseline.gpu_hours

    @property
    def slo_at_least_baseline(self) -> bool:
        return self.ours.waits.slo_attainment >= self.baseline.waits.slo_attainment


def compare_to_best_baseline(
    results: list[SimulationResult], *, ours: str, slo_target: float, exclude: tuple[str, ...] = ()
) -> Comparison | None:
    """None when `ours` or every baseline is missing from `results`."""
    mine = next((r for r in results if r.policy == ours), None)
    baselines = [r for r in results if r.policy != ours and r.policy not in exclude]
    if mine is None or not baselines:
        return None
    meeting = [r for r in baselines if r.waits.slo_attainment >= slo_target]
    if meeting:
        best = min(meeting, key=lambda r: r.gpu_hours)
    else:
        best = max(baselines, key=lambda r: (r.waits.slo_attainment, -r.gpu_hours))
    return Comparison(mine, best, slo_target)
