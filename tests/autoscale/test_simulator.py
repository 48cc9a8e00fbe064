from __future__ import annotations

import time
from dataclasses import dataclass
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
    SimulationResult,
    build_policy,
    get_service_model,
    load_trace,
    simulate_trace,
    trace_from_arrays,
)
from ferryman.autoscale.traces import Trace

SERVICE = get_service_model("llama-2-13b@a100-80gb")  # 28 output tokens = 1 s of decode
EXACT = SimulationConfig(warmup_s=0.0, service_jitter=0.0)
EXCERPT = Path(__file__).resolve().parents[1] / "data" / "azure-llm-2023-excerpt"  # tests/data/README.md
FULL_TRACES = Path(__file__).resolve().parents[3] / "shared" / "data" / "azure-llm-2023"
DOC = Path(__file__).resolve().parents[2] / "docs" / "autoscaler.md"
TRACE_FILES = {"Conversation": "AzureLLMInferenceTrace_conv.csv", "Code": "AzureLLMInferenceTrace_code.csv"}
GPU_HOURS_TOLERANCE, SLO_TOLERANCE = 0.02, 0.001  # the doc rounds to 0.01 GPU-h and 0.01 %


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


def doc_table(heading: str) -> dict[str, tuple[float, float]]:
    """policy -> (GPU-hours, SLO attainment) from the first table after the line starting with `heading`."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(heading))
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append([cell.strip().strip("*") for cell in line.strip("|").split("|")])
        elif table:
            break
    return {
        row[0].removesuffix(" (hindsight)"): (float(row[1]), float(row[3].removesuffix("%")) / 100)
        for row in table[2:]  # after the header and the separator
    }


@dataclass(frozen=True)
class Replay:
    trace: Trace
    seconds: float
    results: dict[str, SimulationResult]


def replay(path: Path, policies: tuple[str, ...] = POLICY_NAMES) -> Replay:
    trace = load_trace(path)
    started = time.perf_counter()
    results = {
        name: simulate_trace(trace, build_policy(name, trace=trace, service=SERVICE), SERVICE)
        for name in policies
    }
    return Replay(trace, time.perf_counter() - started, results)


@pytest.fixture(scope="module")
def excerpt_replays() -> dict[str, Replay]:
    """Every policy over both shipped excerpts, once for the module (about 3 s on a 2-core machine)."""
    return {kind: replay(EXCERPT / name) for kind, name in TRACE_FILES.items()}


@pytest.mark.parametrize("kind", TRACE_FILES)
def test_every_policy_replays_a_real_trace_excerpt_within_a_minute(
    excerpt_replays: dict[str, Replay], kind: str
) -> None:
    done = excerpt_replays[kind]
    assert done.seconds < 60.0
    assert {r.jobs for r in done.results.values()} == {len(done.trace)}
    assert done.results["ferryman"].waits.slo_attainment >= 0.99


def _measured(results: dict[str, SimulationResult]) -> dict[str, tuple[float, float]]:
    return {name: (r.gpu_hours, r.waits.slo_attainment) for name, r in results.items()}


def _differences(
    quoted: dict[str, tuple[float, float]], measured: dict[str, tuple[float, float]]
) -> dict[str, str]:
    differ = {}
    for name in quoted.keys() | measured.keys():
        if name not in quoted or name not in measured:
            differ[name] = f"quoted {quoted.get(name)}, measured {measured.get(name)}"
            continue
        (quoted_hours, quoted_slo), (hours, slo) = quoted[name], measured[name]
        if abs(quoted_hours - hours) > GPU_HOURS_TOLERANCE or abs(quoted_slo - slo) > SLO_TOLERANCE:
            differ[name] = (
                f"docs say {quoted_hours} GPU-h at {quoted_slo:.4%}, the simulator {hours:.3f} at {slo:.4%}"
            )
    return differ


@pytest.mark.parametrize("kind", TRACE_FILES)
def test_docs_autoscaler_md_quotes_what_every_policy_does_on_the_shipped_excerpt(
    excerpt_replays: dict[str, Replay], kind: str
) -> None:
    quoted = doc_table(f"**{kind} excerpt**")

    assert _differences(quoted, _measured(excerpt_replays[kind].results)) == {}


@pytest.mark.allow_skip(
    reason="the full traces are not in the repository; the excerpt tests above always run"
)
@pytest.mark.parametrize("kind", TRACE_FILES)
def test_docs_autoscaler_md_headline_figures_hold_on_the_full_trace(kind: str) -> None:
    if not FULL_TRACES.is_dir():
        pytest.skip(f"the full Azure traces are not at {FULL_TRACES}")
    quoted = doc_table(f"**{kind} trace**")

    done = replay(FULL_TRACES / TRACE_FILES[kind], ("ferryman",))

    assert _differences({"ferryman": quoted["ferryman"]}, _measured(done.results)) == {}
