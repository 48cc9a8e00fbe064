from __future__ import annotations

import numpy as np
import pytest

from ferryman.autoscale import (
    ArrivalEstimator,
    ArrivalWindow,
    PeakednessEstimator,
    RateEstimator,
    ServiceTimeEstimator,
    ServiceTimeFit,
)


def poisson_times(rate_per_s: float, duration_s: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.exponential(1.0 / rate_per_s, int(rate_per_s * duration_s * 1.2)))


def test_rate_estimator_converges_to_a_steady_poisson_rate() -> None:
    estimator = RateEstimator(60.0)
    times = poisson_times(5.0, 3600.0)
    times = times[times < 3600.0]
    for t in times:
        estimator.observe(float(t))
    assert estimator.rate_at(3600.0) == pytest.approx(5.0, rel=0.15)


def test_rate_estimator_decays_without_events() -> None:
    estimator = RateEstimator(60.0, initial_per_s=4.0)
    assert estimator.rate_at(60.0) == pytest.approx(4.0 / np.e)


def test_arrival_estimator_reports_mean_sizes_and_starts_from_initial() -> None:
    estimator = ArrivalEstimator(30.0, initial=ArrivalWindow(60.0, 2.0, 100.0, 10.0))
    assert estimator.window_at(0.0) == ArrivalWindow(30.0, 2.0, 100.0, 10.0)


def test_arrival_estimator_mean_sizes_follow_arrivals() -> None:
    estimator = ArrivalEstimator(30.0)
    for i in range(300):
        estimator.observe(i * 0.5, 200, 20)
    window = estimator.window_at(150.0)
    assert (window.mean_prompt_tokens, window.mean_output_tokens) == pytest.approx((200.0, 20.0))


def test_service_time_estimator_recovers_a_linear_law() -> None:
    estimator = ServiceTimeEstimator(ServiceTimeFit(0.0, 0.0, 0.0))
    rng = np.random.default_rng(1)
    for prompt, output in zip(rng.integers(10, 4000, 2000), rng.integers(1, 500, 2000), strict=True):
        estimator.observe(int(prompt), int(output), 0.3 + prompt / 6000 + output / 28)
    fit = estimator.fit()
    assert fit.base_s == pytest.approx(0.3, abs=0.02)
    assert (fit.per_prompt_token_s, fit.per_output_token_s) == pytest.approx((1 / 6000, 1 / 28), rel=0.02)


def test_service_time_estimator_answers_its_prior_before_reports() -> None:
    prior = ServiceTimeFit(1.0, 0.001, 0.05)
    assert ServiceTimeEstimator(prior).fit() == prior


def test_service_time_fit_prices_a_queue_by_its_token_totals() -> None:
    fit = ServiceTimeFit(0.5, 0.001, 0.1)
    assert fit.predict_s(2000, 100, jobs=2) == pytest.approx(2 * 0.5 + 2.0 + 10.0)


def test_peakedness_is_near_one_for_poisson_demand() -> None:
    estimator = PeakednessEstimator(60.0, 600.0)
    rng = np.random.default_rng(3)
    for step in range(3000):
        estimator.observe(step * 2.0, float(rng.poisson(40.0)))
    assert estimator.peakedness == pytest.approx(1.0, abs=0.2)


def test_peakedness_is_large_for_bursts() -> None:
    estimator = PeakednessEstimator(60.0, 600.0)
    for step in range(3000):
        estimator.observe(step * 2.0, 60.0 if step % 15 == 0 else 0.0)
    assert estimator.peakedness > 20.0
