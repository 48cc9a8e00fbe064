from __future__ import annotations

import numpy as np
import pytest

from ferryman.autoscale import (
    POLICY_NAMES,
    SimulationConfig,
    build_policy,
    get_service_model,
    trace_from_arrays,
)
from ferryman.autoscale.baselines import FixedFleet
from ferryman.autoscale.registry import smallest_fixed_fleet

SERVICE = get_service_model("llama-2-13b@a100-80gb")
TRACE = trace_from_arrays("t", np.arange(600) / 20.0, np.zeros(600, int), np.full(600, 28))  # 20 busy slots


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_build_policy_names_the_policy_it_builds(name: str) -> None:
    assert build_policy(name, trace=TRACE, service=SERVICE).name == name


def test_build_policy_rejects_an_unknown_name_listing_the_known() -> None:
    with pytest.raises(ValueError, match=r"unknown policy 'hpa'; known: \['ferryman'"):
        build_policy("hpa", trace=TRACE, service=SERVICE)


def test_smallest_fixed_fleet_is_the_fewest_workers_meeting_the_slo() -> None:
    config = SimulationConfig(warmup_s=0.0, service_jitter=0.0)
    assert smallest_fixed_fleet(TRACE, SERVICE, config) == 2


def test_fixed_oracle_is_a_fixed_fleet_of_that_size() -> None:
    policy = build_policy("fixed-oracle", trace=TRACE, service=SERVICE, config=SimulationConfig(warmup_s=0.0))
    assert isinstance(policy, FixedFleet) and policy.workers == 2
