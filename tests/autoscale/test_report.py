from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ferryman.autoscale import SimulationResult, Timeline, WaitSummary, compare_to_best_baseline
from ferryman.autoscale.report import summarize_waits

EMPTY = np.zeros(0)


def result(policy: str, gpu_hours: float, slo: float) -> SimulationResult:
    return SimulationResult(
        policy=policy, trace="t", service="s", jobs=1, gpu_hours=gpu_hours, cost_usd=gpu_hours,
        waits=WaitSummary(0.0, 0.0, 0.0, 2.0, slo), scale_events=0, workers_provisioned=0, peak_workers=1,
        arrival_s=EMPTY, wait_s=EMPTY, timeline=Timeline(EMPTY, EMPTY, EMPTY, EMPTY, EMPTY),
    )  # fmt: skip


def test_summarize_waits_takes_percentiles_and_the_share_within_the_slo() -> None:
    waits = np.array([0.0] * 90 + [1.0] * 5 + [3.0] * 4 + [math.inf])
    # the 'higher' rule: p95 is the 96th smallest wait, p99 the 100th
    assert summarize_waits(waits, 2.0) == WaitSummary(0.0, 3.0, math.inf, 2.0, 0.95)


def test_summary_reports_a_never_ending_wait_as_minus_one() -> None:
    unfinished = replace(result("x", 1.0, 0.5), waits=WaitSummary(0.0, math.inf, math.inf, 2.0, 0.5))
    assert (unfinished.summary()["p95_wait_s"], unfinished.summary()["p99_wait_s"]) == (-1.0, -1.0)


def test_compare_picks_the_cheapest_baseline_meeting_the_slo_target() -> None:
    results = [
        result("ferryman", 3.0, 1.0),
        result("a", 5.0, 1.0),
        result("b", 4.0, 0.995),
        result("c", 1.0, 0.9),
    ]
    comparison = compare_to_best_baseline(results, ours="ferryman", slo_target=0.99)
    assert comparison is not None
    assert (
        comparison.baseline.policy,
        round(comparison.gpu_hours_saved, 3),
        comparison.slo_at_least_baseline,
    ) == (
        "b",
        0.25,
        True,
    )


def test_compare_falls_back_to_the_best_slo_when_no_baseline_meets_the_target() -> None:
    results = [result("ferryman", 3.0, 0.999), result("a", 5.0, 0.95), result("b", 1.0, 0.8)]
    comparison = compare_to_best_baseline(results, ours="ferryman", slo_target=0.99)
    assert comparison is not None and comparison.baseline.policy == "a"


def test_compare_skips_excluded_baselines_and_needs_ours() -> None:
    results = [result("ferryman", 3.0, 1.0), result("oracle", 2.0, 1.0), result("a", 5.0, 1.0)]
    comparison = compare_to_best_baseline(results, ours="ferryman", slo_target=0.99, exclude=("oracle",))
    assert comparison is not None and comparison.baseline.policy == "a"
    assert compare_to_best_baseline(results[1:], ours="ferryman", slo_target=0.99) is None
