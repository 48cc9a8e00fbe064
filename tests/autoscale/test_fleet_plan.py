from __future__ import annotations

from ferryman.autoscale import WorkerState, plan_fleet

from .factories import signals, worker


def test_plan_fleet_resumes_draining_workers_before_provisioning() -> None:
    fleet = (worker(0), worker(1, WorkerState.DRAINING, busy=2), worker(2, WorkerState.DRAINING, busy=5))
    decision = plan_fleet(signals(workers=fleet), 4, "grow")
    assert (decision.resume, decision.scale_up, decision.drain) == (("w2", "w1"), 1, ())


def test_plan_fleet_cancels_newest_starting_then_idle_then_least_busy() -> None:
    fleet = (
        worker(0, busy=3),
        worker(1, busy=1),
        worker(2, idle_since_s=500.0),
        worker(3, WorkerState.STARTING, provisioned_s=900.0),
        worker(4, WorkerState.STARTING, provisioned_s=950.0),
    )
    decision = plan_fleet(signals(workers=fleet), 1, "shrink")
    assert (decision.drain, decision.scale_up, decision.desired_workers) == (("w4", "w3", "w2", "w1"), 0, 1)


def test_plan_fleet_changes_nothing_at_the_desired_size() -> None:
    decision = plan_fleet(signals(workers=(worker(0), worker(1))), 2, "hold")
    assert not decision.changes_fleet
