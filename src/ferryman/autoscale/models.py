"""What an autoscaling policy sees (FleetSignals) and what it answers (Decision), per region and model.

Plain frozen values: the queue node (or the simulator) builds the signals, a policy turns them into a
decision, and an executor carries the decision out. Keeping the policy away from I/O is what lets the
simulator replay an hour of traffic in under a second and the tests pin down every branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from ferryman.types import Priority, Region

from .estimators import ArrivalWindow, ServiceTimeFit


class WorkerState(StrEnum):
    """A worker's place in its life: booting (billed, no slots yet), serving, or finishing its jobs."""

    STARTING = "starting"
    WARM = "warm"
    DRAINING = "draining"


@dataclass(frozen=True, slots=True)
class WorkerView:
    """One worker as the policy sees it. `idle_since_s` is None while any slot is busy."""

    worker_id: str
    state: WorkerState
    slots: int
    busy_slots: int
    provisioned_s: float
    idle_since_s: float | None = None

    @property
    def is_idle(self) -> bool:
        return self.busy_slots == 0


@dataclass(frozen=True, slots=True)
class FleetSignals:
    """Everything a policy may use about one (region, model) queue at `now_s`.

    `short` and `long` are arrival EWMAs (rate and mean sizes) with two time constants. `service` is
    the learned size → seconds fit; since it is linear, the queued token totals price the backlog
    exactly. `demand_peakedness` is the variance over mean of the jobs running or queued (1 for
    Poisson traffic; see PeakednessEstimator).
    `wait_target_s` is the class's queue-wait objective (the SLO: start within this long) and
    `deadline_s` the time within which a backlog should be cleared; `provisioning_lag_s` is the
    recent time from provision to warm.
    """

    region: Region
    model: str
    priority: Priority
    now_s: float
    short: ArrivalWindow
    long: ArrivalWindow
    service: ServiceTimeFit
    demand_peakedness: float
    queue_depth: int
    queued_prompt_tokens: int
    queued_output_tokens: int
    oldest_job_age_s: float
    workers: tuple[WorkerView, ...]
    provisioning_lag_s: float
    wait_target_s: float
    deadline_s: float
    slots_per_worker: int
    price_usd_per_worker_hour: float

    @property
    def starting(self) -> int:
        return sum(1 for w in self.workers if w.state is WorkerState.STARTING)

    @property
    def warm(self) -> int:
        return sum(1 for w in self.workers if w.state is WorkerState.WARM)

    @property
    def draining(self) -> int:
        return sum(1 for w in self.workers if w.state is WorkerState.DRAINING)

    @property
    def busy(self) -> int:
        """Warm workers with at least one running job."""
        return sum(1 for w in self.workers if w.state is WorkerState.WARM and w.busy_slots > 0)

    @property
    def active(self) -> int:
        """Workers that count toward capacity: warm ones and those on the way."""
        return self.starting + self.warm

    @property
    def running_jobs(self) -> int:
        return sum(w.busy_slots for w in self.workers)

    def mean_service_s(self, window: ArrivalWindow) -> float:
        """Predicted slot-seconds of a job of the window's mean size."""
        return self.service.predict_s(window.mean_prompt_tokens, window.mean_output_tokens)

    def offered_load(self, window: ArrivalWindow) -> float:
        """Little's law: slots kept busy by the window's arrivals (rate x mean service time)."""
        return window.rate_per_s * self.mean_service_s(window)

    @property
    def backlog_work_s(self) -> float:
        """Slot-seconds of work waiting in the queue."""
        return self.service.predict_s(
            self.queued_prompt_tokens, self.queued_output_tokens, jobs=self.queue_depth
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy's answer, with the inputs it saw so any decision can be explained after the fact.

    The executor provisions `scale_up` new workers, returns the `resume` workers from draining to
    service, and drains the `drain` workers: a starting one is destroyed at once, a warm one takes no
    new jobs and is destroyed when its last job finishes. Nothing busy is ever killed.
    """

    desired_workers: int
    scale_up: int
    resume: tuple[str, ...]
    drain: tuple[str, ...]
    reason: str
    signals: FleetSignals

    @property
    def changes_fleet(self) -> bool:
        return bool(self.scale_up or self.resume or self.drain)


class ScalingPolicy(Protocol):
    """Turns signals into a decision. May keep private history (windows, cool-downs) between calls,
    so use one instance per (region, model) queue and call it with non-decreasing `now_s`."""

    name: str

    def decide(self, signals: FleetSignals) -> Decision: ...
