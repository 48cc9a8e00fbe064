from __future__ import annotations

from ferryman.autoscale import (
    FixedFleet,
    KnativeKPA,
    RayServe,
    RunPodQueueDelay,
    get_service_model,
    peak_fleet_size,
    trace_from_arrays,
)
from ferryman.autoscale.models import WorkerState

from .factories import signals, warm_fleet, worker


def test_kpa_sizes_for_stable_concurrency_at_70_percent_of_slots() -> None:
    kpa = KnativeKPA(slots_per_worker=16)
    decision = kpa.decide(signals(workers=warm_fleet(4, busy=10)))
    # 40 concurrent / (16 x 0.7) → 4 pods
    assert (decision.desired_workers, decision.reason.startswith("stable")) == (4, True)


def test_kpa_scales_down_at_most_by_half_per_decision() -> None:
    kpa = KnativeKPA(slots_per_worker=16)
    assert kpa.decide(signals(workers=warm_fleet(8))).desired_workers == 4


def test_kpa_panics_on_a_surge_and_does_not_scale_down_while_panicking() -> None:
    kpa = KnativeKPA(slots_per_worker=16)
    surge = kpa.decide(signals(now_s=0.0, queue_depth=60, workers=warm_fleet(2)))
    calm = kpa.decide(signals(now_s=30.0, workers=warm_fleet(6)))
    assert (surge.desired_workers, surge.reason.startswith("panic")) == (6, True)
    assert (calm.desired_workers, calm.drain) == (6, ())


def test_kpa_leaves_panic_after_a_stable_window_without_surge() -> None:
    kpa = KnativeKPA(slots_per_worker=16)
    kpa.decide(signals(now_s=0.0, queue_depth=60, workers=warm_fleet(2)))
    later = kpa.decide(signals(now_s=61.0, workers=warm_fleet(6, busy=3)))
    assert later.reason.startswith("stable")


def test_ray_serve_waits_for_the_upscale_delay() -> None:
    ray = RayServe(slots_per_worker=16)
    first = ray.decide(signals(now_s=0.0, queue_depth=40, workers=warm_fleet(1)))
    later = ray.decide(signals(now_s=30.0, queue_depth=40, workers=warm_fleet(1)))
    assert (first.desired_workers, later.desired_workers) == (1, 4)


def test_ray_serve_waits_ten_minutes_before_scaling_down() -> None:
    ray = RayServe(slots_per_worker=16)
    fleet = warm_fleet(4)
    decisions = [ray.decide(signals(now_s=t, workers=fleet)).desired_workers for t in (0.0, 599.0, 600.0)]
    assert decisions == [4, 4, 1]


def test_runpod_adds_workers_for_the_queue_when_the_oldest_job_waited_too_long() -> None:
    runpod = RunPodQueueDelay()
    fleet = (*warm_fleet(2, busy=16), worker(2, WorkerState.STARTING))
    decision = runpod.decide(signals(queue_depth=40, oldest_job_age_s=5.0, workers=fleet))
    # 40 queued jobs need 3 workers' slots; one is already starting
    assert (decision.desired_workers, decision.scale_up) == (5, 2)


def test_runpod_stops_workers_idle_past_the_timeout() -> None:
    runpod = RunPodQueueDelay()
    fleet = (worker(0, idle_since_s=990.0), worker(1, idle_since_s=998.0), worker(2, busy=1))
    decision = runpod.decide(signals(now_s=1000.0, workers=fleet))
    assert decision.drain == ("w0",)


def test_fixed_fleet_replaces_missing_workers() -> None:
    decision = FixedFleet(3, name="fixed-peak").decide(signals(workers=warm_fleet(1)))
    assert (decision.desired_workers, decision.scale_up) == (3, 2)


def test_peak_fleet_size_plans_for_the_busiest_minute() -> None:
    service = get_service_model("llama-2-13b@a100-80gb")
    quiet = [float(t) for t in range(0, 60, 10)]
    busy = [60.0 + i * 0.1 for i in range(600)]  # 10 jobs/s of 1 s each: 10 busy slots
    trace = trace_from_arrays("t", quiet + busy, [0] * 606, [28] * 606)
    assert peak_fleet_size(trace, service) == 1
    assert peak_fleet_size(trace_from_arrays("t", busy, [0] * 600, [280] * 600), service) == 8
