from __future__ import annotations

import pytest

from ferryman.autoscale.staffing import delay_probability, headroom_beta, wait_miss_probability


def test_delay_probability_is_one_without_headroom_and_falls_with_it() -> None:
    values = [delay_probability(beta) for beta in (0.0, 0.5, 1.0, 2.0)]
    assert values[0] == 1.0 and values == sorted(values, reverse=True)


def test_delay_probability_matches_halfin_whitt_at_beta_one() -> None:
    # 1 / (1 + Φ(1)/φ(1)) = 1 / (1 + 0.8413/0.2420)
    assert delay_probability(1.0) == pytest.approx(0.2235, abs=1e-3)


def test_headroom_beta_is_the_smallest_that_meets_the_miss_target() -> None:
    kwargs = {"load": 50.0, "peakedness": 1.0, "service_s": 8.0, "wait_s": 2.0}
    beta = headroom_beta(miss=0.01, **kwargs)
    assert wait_miss_probability(beta, **kwargs) <= 0.01 < wait_miss_probability(beta - 0.01, **kwargs)


def test_headroom_beta_is_zero_without_load() -> None:
    assert headroom_beta(load=0.0, peakedness=1.0, service_s=8.0, wait_s=2.0, miss=0.01) == 0.0


def test_headroom_beta_grows_with_peakedness() -> None:
    smooth = headroom_beta(load=10.0, peakedness=1.0, service_s=1.5, wait_s=2.0, miss=0.01)
    bursty = headroom_beta(load=10.0, peakedness=20.0, service_s=1.5, wait_s=2.0, miss=0.01)
    assert bursty > smooth
