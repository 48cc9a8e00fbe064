from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from ferryman.autoscale import (
    POLICY_NAMES,
    Decision,
    FerrymanPolicy,
    FixedFleet,
    FleetSignals,
    SimulationConfig,
    build_policy,
    get_service_model,
    load_trace,
    simulate_trace,
    trace_from_arrays,
)
from ferryman.autoscale.traces import Trace

SERVICE = get_service_model("llama-2-13b@a100-80gb")  # 28 output tokens = 1 s of decode
EXACT = SimulationConfig(warmup_s=0.0, service_jitter=0.0)
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "azure-llm-2023"


def steady(rate_per_s: float, duration_s: float, output_tokens: int = 28) -> Trace:
    count = int(rate_per_s * duration_s)
    arrivals = np.arange(count) / rate_per_s
    return trace_from_arrays("steady", arrivals, np.zeros(count, int), np.full(count, output_tokens))


def test_simulate_trace_has_no_waits_when_capacity_suffices() -> None:
    result = simulate_trace(steady(2.0, 600.0), FixedFleet(1), SERVICE, EXACT)
    assert (result.jobs, result.waits.slo_attainment, result.waits.p99_s, result.scale_events) == (
        1200,
        1.0,
        0.0,
        0,
    )


def test_simulate_trace_bills_every_worker_from_start_to_end() -> None:
    result = simulate_trace(steady(2.0, 600.0), FixedFleet(2), SERVICE, EXACT)
    # the last job arrives at 599.5 s and runs 1 s
    assert result.gpu_hours == pytest.approx(2 * 600.5 / 3600)
    assert result.cost_usd == pytest.approx(result.gpu_hours * SERVICE.price_usd_per_gpu_hour)


def test_simulate_trace_queues_jobs_beyond_the_slots() -> None:
    # 40 jobs/s of 1 s each on 16 slots: the queue grows for the whole minute
    result = simulate_trace(steady(40.0, 60.0), FixedFleet(1), SERVICE, EXACT)
    assert result.waits.slo_attainment < 0.2
    assert result.waits.p99_s > 60.0


def test_simulate_trace_provisions_workers_that_arrive_after_booting() -> None:
    result = simulate_trace(steady(40.0, 1200.0), FerrymanPolicy(), SERVICE, EXACT)
    assert result.workers_provisioned >= 2
    assert result.peak_workers >= 3
    assert result.timeline.warm_workers[-1] >= 3


def test_simulate_trace_is_deterministic_for_a_seed() -> None:
    trace = steady(10.0, 900.0, output_tokens=200)
    config = SimulationConfig(seed=3)
    first = simulate_trace(trace, FerrymanPolicy(), SERVICE, config)
    again = simulate_trace(trace, FerrymanPolicy(), SERVICE, config)
    assert first.summary() == again.summary()
    assert np.array_equal(first.wait_s, again.wait_s)


def test_simulate_trace_does_not_measure_the_warmup() -> None:
    trace = steady(2.0, 600.0)
    result = simulate_trace(trace, FixedFleet(1), SERVICE, SimulationConfig(warmup_s=300.0))
    assert (result.jobs, float(result.arrival_s.min())) == (1200, 0.0)


def test_simulate_trace_reports_progress_fractions() -> None:
    seen: list[float] = []
    simulate_trace(steady(2.0, 600.0), FixedFleet(1), SERVICE, EXACT, on_progress=seen.append)
    assert seen and seen == sorted(seen) and 0.0 <= seen[0] and seen[-1] <= 1.0


def test_simulate_trace_of_no_jobs_bills_nothing() -> None:
    empty = trace_from_arrays("empty", [], [], [])
    result = simulate_trace(empty, FerrymanPolicy(), SERVICE)
    assert (result.jobs, result.gpu_hours, result.waits.slo_attainment) == (0, 0.0, 1.0)


class NamesAGhost:
    name = "ghost"

    def decide(self, signals: FleetSignals) -> Decision:
        return Decision(1, 0, (), ("w99",), "drain a worker that does not exist", signals)


def test_simulate_trace_rejects_a_policy_naming_an_unknown_worker() -> None:
    with pytest.raises(ValueError, match="ghost named worker 'w99'"):
        simulate_trace(steady(1.0, 60.0), NamesAGhost(), SERVICE, EXACT)


@pytest.mark.skipif(not DATA.exists(), reason="Azure traces not present")
@pytest.mark.parametrize("trace_file", ["AzureLLMInferenceTrace_conv.csv", "AzureLLMInferenceTrace_code.csv"])
def test_every_policy_replays_a_real_trace_within_a_minute(trace_file: str) -> None:
    trace = load_trace(DATA / trace_file)
    started = time.perf_counter()
    results = {
        name: simulate_trace(trace, build_policy(name, trace=trace, service=SERVICE), SERVICE)
        for name in POLICY_NAMES
    }
    assert time.perf_counter() - started < 60.0
    assert {r.jobs for r in results.values()} == {len(trace)}
    assert results["ferryman"].waits.slo_attainment >= 0.99
