from __future__ import annotations

import math
from typing import Any

import pytest

from ferryman.autoscale import FerrymanPolicy, PolicyConfig, WorkerState, forecast_load, size_slots
from ferryman.types import Priority

from .factories import signals, warm_fleet, worker


def settled(policy: FerrymanPolicy, **kwargs: Any) -> FerrymanPolicy:
    """A policy that has already run for a cool-down with the given signals."""
    policy.decide(signals(now_s=0.0, **kwargs))
    return policy


def test_size_slots_is_littles_law_plus_square_root_headroom() -> None:
    sizing = size_slots(signals(rate_per_s=5.0), PolicyConfig())
    # 5 jobs/s x 10 s = 50 busy slots; β from the 2 s wait target at 1% misses
    assert (sizing.steady_slots, sizing.drain_slots) == (50.0, 0.0)
    assert sizing.headroom_slots == pytest.approx(sizing.beta * math.sqrt(50.0))
    assert 1.0 < sizing.beta < 2.0


def test_size_slots_divides_by_target_utilization() -> None:
    sizing = size_slots(signals(rate_per_s=5.0), PolicyConfig(target_utilization=0.8))
    assert sizing.steady_slots == pytest.approx(62.5)


def test_size_slots_adds_a_drain_term_for_the_backlog() -> None:
    backlog = signals(rate_per_s=5.0, queue_depth=12, queued_prompt_tokens=12_000, queued_output_tokens=1020)
    # 12 jobs x 10 s = 120 slot-seconds to clear within the 60 s deadline
    assert size_slots(backlog, PolicyConfig()).drain_slots == pytest.approx(2.0)


def test_size_slots_widens_headroom_for_bursty_demand() -> None:
    smooth = size_slots(signals(rate_per_s=1.0), PolicyConfig())
    bursty = size_slots(signals(rate_per_s=1.0, demand_peakedness=25.0), PolicyConfig())
    assert bursty.headroom_slots > 3 * smooth.headroom_slots


def test_forecast_load_extrapolates_a_rising_trend_one_lag_ahead() -> None:
    rising = signals(rate_per_s=6.0, long_rate_per_s=5.0)
    # slope = (60 - 50) / (600 - 60) slots/s, carried 60 s (EWMA lag) + 120 s (boot) ahead
    assert forecast_load(rising) == pytest.approx(60.0 + 10.0 / 540.0 * 180.0)


def test_forecast_load_does_not_extrapolate_a_falling_trend() -> None:
    assert forecast_load(signals(rate_per_s=4.0, long_rate_per_s=5.0)) == pytest.approx(40.0)


def test_decide_scales_up_at_once_to_the_sized_fleet() -> None:
    policy = settled(FerrymanPolicy(), workers=warm_fleet(2))
    decision = policy.decide(signals(rate_per_s=5.0, workers=warm_fleet(2)))
    assert (decision.desired_workers, decision.scale_up, decision.drain) == (4, 2, ())


def test_decide_holds_the_fleet_until_the_cooldown_has_passed() -> None:
    policy = FerrymanPolicy(PolicyConfig(cooldown_s=300.0))
    fleet = warm_fleet(4)
    policy.decide(signals(now_s=0.0, rate_per_s=5.0, workers=fleet))
    during = policy.decide(signals(now_s=200.0, rate_per_s=0.2, workers=fleet))
    after = policy.decide(signals(now_s=301.0, rate_per_s=0.2, workers=fleet))
    assert (during.drain, during.reason.endswith("holding 4 for cool-down")) == ((), True)
    assert (after.desired_workers, len(after.drain)) == (1, 3)


def test_decide_keeps_a_fresh_policys_fleet_for_one_cooldown() -> None:
    decision = FerrymanPolicy().decide(signals(rate_per_s=0.5, workers=warm_fleet(3)))
    assert (decision.desired_workers, decision.drain) == (3, ())


def test_decide_drains_the_least_busy_workers_first() -> None:
    fleet = (worker(0, busy=9), worker(1, busy=2), worker(2, busy=5))
    policy = settled(FerrymanPolicy(PolicyConfig(cooldown_s=10.0)), workers=fleet)
    decision = policy.decide(signals(now_s=100.0, rate_per_s=0.2, workers=fleet))
    assert decision.drain == ("w1", "w2")


def test_decide_respects_min_and_max_workers() -> None:
    config = PolicyConfig(min_workers=2, max_workers=3, cooldown_s=0.0)
    idle = FerrymanPolicy(config).decide(signals(rate_per_s=0.0, workers=warm_fleet(2)))
    busy = FerrymanPolicy(config).decide(signals(rate_per_s=50.0, workers=warm_fleet(2)))
    assert (idle.desired_workers, busy.desired_workers) == (2, 3)


def test_decide_caps_the_fleet_at_the_spend_cap() -> None:
    config = PolicyConfig(spend_cap_usd_per_hour=4.0)
    decision = FerrymanPolicy(config).decide(signals(rate_per_s=50.0, workers=warm_fleet(1)))
    # $1.50 per worker-hour: at most 2 workers for $4/h
    assert (decision.desired_workers, decision.scale_up) == (2, 1)


def test_decide_applies_the_spend_cap_even_during_the_cooldown() -> None:
    policy = settled(FerrymanPolicy(PolicyConfig(spend_cap_usd_per_hour=3.0)), workers=warm_fleet(4))
    decision = policy.decide(signals(rate_per_s=5.0, workers=warm_fleet(4)))
    assert (decision.desired_workers, decision.drain) == (2, ("w0", "w1"))


def test_decide_scales_a_batch_only_model_to_zero_when_idle() -> None:
    fleet = (worker(0, idle_since_s=0.0),)
    policy = settled(FerrymanPolicy(PolicyConfig(cooldown_s=0.0)), priority=Priority.BATCH, workers=fleet)
    decision = policy.decide(signals(priority=Priority.BATCH, rate_per_s=0.0, workers=fleet))
    assert (decision.desired_workers, decision.drain) == (0, ("w0",))


def test_decide_keeps_the_minimum_for_interactive_models_when_idle() -> None:
    policy = settled(FerrymanPolicy(PolicyConfig(cooldown_s=0.0)), workers=warm_fleet(1))
    decision = policy.decide(signals(rate_per_s=0.0, workers=warm_fleet(1)))
    assert (decision.desired_workers, decision.drain) == (1, ())


def test_decide_counts_starting_workers_as_capacity() -> None:
    fleet = (*warm_fleet(2), worker(2, WorkerState.STARTING), worker(3, WorkerState.STARTING))
    decision = settled(FerrymanPolicy(), workers=fleet).decide(signals(rate_per_s=5.0, workers=fleet))
    assert (decision.desired_workers, decision.scale_up) == (4, 0)


def test_decide_explains_itself_and_keeps_its_inputs() -> None:
    observed = signals(rate_per_s=5.0, workers=warm_fleet(4))
    decision = settled(FerrymanPolicy(), workers=warm_fleet(4)).decide(observed)
    assert decision.signals is observed
    assert decision.reason.startswith(
        "load 50.0 → 50.0 slots in 120s, peakedness 1.0, β 1.50: 50.0 steady + 10.6"
    )


def test_policy_config_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="min_workers <= max_workers"):
        PolicyConfig(min_workers=5, max_workers=2)
