"""Discrete-event replay of a trace against a service model, with a scaling policy on a fixed tick.

Events are job arrivals (read in order from the trace), job finishes, workers becoming warm, and
policy ticks, kept in a heap. A job holds one slot for its whole service time, so there are no
per-token events and a one-hour trace replays in about a second. Randomness (boot times, per-job
service noise) comes from one seeded generator and is drawn up front, so every policy meets the same
boots and the same jobs, and reruns are identical.

Warm-up: the first `warmup_s` of the trace is replayed mirrored before time 0, so each policy enters
the measured hour in its own steady state instead of all starting from an arbitrary fleet. Nothing
before time 0 is billed or measured.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ferryman.types import Priority, Region

from .estimators import (
    ArrivalEstimator,
    ArrivalWindow,
    PeakednessEstimator,
    ServiceTimeEstimator,
    ServiceTimeFit,
)
from .models import Decision, FleetSignals, ScalingPolicy, WorkerState, WorkerView
from .report import SimulationResult, Timeline, summarize_waits
from .service_model import ServiceModel
from .traces import Trace

_FINISH, _READY, _TICK = 0, 1, 2
_BOOT_LAG_SMOOTHING = 0.2


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """How to replay: policy tick, SLO, class deadline, warm-up, seed and estimator windows."""

    tick_s: float = 2.0
    slo_wait_s: float = 2.0
    deadline_s: float = 60.0
    warmup_s: float = 900.0
    seed: int = 0
    service_jitter: float = 0.1
    short_window_s: float = 60.0
    long_window_s: float = 600.0
    peakedness_window_s: float = 60.0
    peakedness_memory_s: float = 600.0
    region: Region = Region.US
    priority: Priority = Priority.INTERACTIVE
    max_tail_s: float = 6 * 3600.0


class _Worker:
    __slots__ = ("index", "state", "slots", "busy", "provisioned_s", "idle_since_s", "destroyed_s")

    def __init__(self, index: int, slots: int, now_s: float) -> None:
        self.index = index
        self.state = WorkerState.STARTING
        self.slots = slots
        self.busy = 0
        self.provisioned_s = now_s
        self.idle_since_s: float | None = None
        self.destroyed_s: float | None = None

    @property
    def worker_id(self) -> str:
        return f"w{self.index}"

    def view(self) -> WorkerView:
        return WorkerView(
            self.worker_id, self.state, self.slots, self.busy, self.provisioned_s, self.idle_since_s
        )


@dataclass(frozen=True, slots=True, eq=False)
class _Jobs:
    """The replayed jobs: the mirrored warm-up prefix followed by the trace."""

    arrival_s: npt.NDArray[np.float64]
    prompt_tokens: npt.NDArray[np.int64]
    output_tokens: npt.NDArray[np.int64]
    service_s: npt.NDArray[np.float64]
    first_measured: int


def _replayed_jobs(
    trace: Trace, service: ServiceModel, config: SimulationConfig, rng: np.random.Generator
) -> _Jobs:
    warm = trace.arrival_s <= min(config.warmup_s, trace.duration_s)
    warm[:1] = False  # the mirror of time 0 is time 0 itself
    prefix = np.flatnonzero(warm)[::-1]
    arrival = np.concatenate([-trace.arrival_s[prefix], trace.arrival_s])
    prompt = np.concatenate([trace.prompt_tokens[prefix], trace.prompt_tokens])
    output = np.concatenate([trace.output_tokens[prefix], trace.output_tokens])
    noise = np.exp(config.service_jitter * rng.standard_normal(arrival.shape[0]))
    return _Jobs(arrival, prompt, output, service.service_s(prompt, output) * noise, int(prefix.shape[0]))


def _opening_window(jobs: _Jobs, span_s: float = 60.0) -> ArrivalWindow:
    """Arrivals of the first minute, to start the estimators (and the fleet) in steady state."""
    if jobs.arrival_s.size == 0:
        return ArrivalWindow(span_s, 0.0, 0.0, 0.0)
    first = jobs.arrival_s < jobs.arrival_s[0] + span_s
    count = int(first.sum())
    return ArrivalWindow(
        span_s,
        count / span_s,
        float(jobs.prompt_tokens[first].mean()),
        float(jobs.output_tokens[first].mean()),
    )


class _Simulation:
    def __init__(
        self,
        trace: Trace,
        policy: ScalingPolicy,
        service: ServiceModel,
        config: SimulationConfig,
        on_progress: Callable[[float], None] | None,
    ) -> None:
        rng = np.random.default_rng(config.seed)
        self.trace, self.policy, self.service, self.config = trace, policy, service, config
        self.jobs = _replayed_jobs(trace, service, config, rng)
        # a generator of its own, so the k-th worker any policy provisions boots in the same time
        self.boot_rng = np.random.default_rng([config.seed, 1])
        self.on_progress = on_progress
        n = self.jobs.arrival_s.shape[0]
        self.wait_s = np.full(n, np.inf)
        self.job_worker = np.full(n, -1, dtype=np.int64)
        self.heap: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.queue: deque[int] = deque()
        self.queued_prompt = self.queued_output = 0
        self.workers: list[_Worker] = []
        self.alive: dict[int, _Worker] = {}
        self.warm: list[_Worker] = []
        self.scale_events = 0
        self.timeline: list[tuple[float, int, int, int, int]] = []
        start_s = float(self.jobs.arrival_s[0]) if n else 0.0
        opening = _opening_window(self.jobs)
        self.short = ArrivalEstimator(config.short_window_s, now_s=start_s, initial=opening)
        self.long = ArrivalEstimator(config.long_window_s, now_s=start_s, initial=opening)
        self.demand = PeakednessEstimator(config.peakedness_window_s, config.peakedness_memory_s)
        prior = ServiceTimeFit(0.0, 1 / service.prefill_tokens_per_s, 1 / service.decode_tokens_per_s)
        self.service_fit = ServiceTimeEstimator(prior)
        self.boot_lag_s = service.boot.median_s
        self.now_s = start_s

    # -- the event loop ---------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        self._bootstrap_fleet()
        self._push(self.now_s, _TICK, 0)
        arrivals, next_job, n = self.jobs.arrival_s, 0, self.jobs.arrival_s.shape[0]
        deadline_s = (float(arrivals[-1]) if n else 0.0) + self.config.max_tail_s
        while self.heap:
            if next_job < n and arrivals[next_job] < self.heap[0][0]:
                self.now_s = float(arrivals[next_job])
                self._arrive(next_job)
                next_job += 1
                continue
            time_s, kind, _, payload = heapq.heappop(self.heap)
            if kind != _FINISH and not (next_job < n or self.queue or self._running()):
                continue  # no work left: the replay (and the bill) ends with the last job
            if time_s > deadline_s:
                break
            self.now_s = time_s
            if kind == _FINISH:
                self._finish(payload)
            elif kind == _READY:
                self._ready(payload)
            else:
                self._tick()
        return self._result()

    def _push(self, time_s: float, kind: int, payload: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (time_s, kind, self.seq, payload))

    def _running(self) -> bool:
        return any(w.busy for w in self.alive.values())

    def _bootstrap_fleet(self) -> None:
        """Start with the warm fleet the policy asks for before the first job (a fixed fleet starts
        whole; an autoscaler sizes from the opening minute's arrivals)."""
        decision = self.policy.decide(self._signals())
        for _ in range(decision.desired_workers):
            worker = self._provision()
            worker.state, worker.idle_since_s = WorkerState.WARM, self.now_s
            self.warm.append(worker)

    # -- jobs -------------------------------------------------------------------------------------

    def _arrive(self, job: int) -> None:
        jobs = self.jobs
        prompt, output = int(jobs.prompt_tokens[job]), int(jobs.output_tokens[job])
        self.short.observe(self.now_s, prompt, output)
        self.long.observe(self.now_s, prompt, output)
        self.queue.append(job)
        self.queued_prompt += prompt
        self.queued_output += output
        self._dispatch()

    def _dispatch(self) -> None:
        while self.queue and self.warm:
            worker = min(self.warm, key=lambda w: w.busy)
            if worker.busy >= worker.slots:
                return
            job = self.queue.popleft()
            self.queued_prompt -= int(self.jobs.prompt_tokens[job])
            self.queued_output -= int(self.jobs.output_tokens[job])
            self.wait_s[job] = self.now_s - self.jobs.arrival_s[job]
            self.job_worker[job] = worker.index
            worker.busy += 1
            worker.idle_since_s = None
            self._push(self.now_s + float(self.jobs.service_s[job]), _FINISH, job)

    def _finish(self, job: int) -> None:
        worker = self.workers[int(self.job_worker[job])]
        jobs = self.jobs
        self.service_fit.observe(
            int(jobs.prompt_tokens[job]), int(jobs.output_tokens[job]), float(jobs.service_s[job])
        )
        worker.busy -= 1
        if worker.busy == 0:
            worker.idle_since_s = self.now_s
            if worker.state is WorkerState.DRAINING:
                self._destroy(worker)
        self._dispatch()

    # -- workers ----------------------------------------------------------------------------------

    def _provision(self) -> _Worker:
        worker = _Worker(len(self.workers), self.service.slots, self.now_s)
        self.workers.append(worker)
        self.alive[worker.index] = worker
        return worker

    def _boot_time(self) -> float:
        return float(self.service.boot.sample(self.boot_rng, 1)[0])

    def _ready(self, index: int) -> None:
        worker = self.workers[index]
        if worker.destroyed_s is not None:
            return
        boot_s = self.now_s - worker.provisioned_s
        self.boot_lag_s += _BOOT_LAG_SMOOTHING * (boot_s - self.boot_lag_s)
        worker.state, worker.idle_since_s = WorkerState.WARM, self.now_s
        self.warm.append(worker)
        self._dispatch()

    def _destroy(self, worker: _Worker) -> None:
        if worker in self.warm:
            self.warm.remove(worker)
        worker.destroyed_s = self.now_s
        del self.alive[worker.index]

    # -- the policy -------------------------------------------------------------------------------

    def _tick(self) -> None:
        decision = self.policy.decide(self._signals())
        self._apply(decision)
        if self.now_s >= 0:
            self.scale_events += int(decision.changes_fleet)
            self._record()
        if self.on_progress is not None and len(self.timeline) % 50 == 0:
            self.on_progress(min(1.0, max(0.0, self.now_s) / max(self.trace.duration_s, 1e-9)))
        self._push(self.now_s + self.config.tick_s, _TICK, 0)

    def _signals(self) -> FleetSignals:
        now, config = self.now_s, self.config
        workers = tuple(w.view() for w in self.alive.values())
        self.demand.observe(now, sum(w.busy_slots for w in workers) + len(self.queue))
        return FleetSignals(
            region=config.region,
            model=self.service.name,
            priority=config.priority,
            now_s=now,
            short=self.short.window_at(now),
            long=self.long.window_at(now),
            service=self.service_fit.fit(),
            demand_peakedness=self.demand.peakedness,
            queue_depth=len(self.queue),
            queued_prompt_tokens=self.queued_prompt,
            queued_output_tokens=self.queued_output,
            oldest_job_age_s=now - float(self.jobs.arrival_s[self.queue[0]]) if self.queue else 0.0,
            workers=workers,
            provisioning_lag_s=self.boot_lag_s,
            wait_target_s=config.slo_wait_s,
            deadline_s=config.deadline_s,
            slots_per_worker=self.service.slots,
            price_usd_per_worker_hour=self.service.price_usd_per_worker_hour,
        )

    def _apply(self, decision: Decision) -> None:
        for worker in self._named(decision.resume, WorkerState.DRAINING):
            worker.state = WorkerState.WARM
            self.warm.append(worker)
        for worker in self._named(decision.drain, WorkerState.STARTING, WorkerState.WARM):
            if worker.state is WorkerState.STARTING or worker.busy == 0:
                self._destroy(worker)
            else:
                self.warm.remove(worker)
                worker.state = WorkerState.DRAINING
        for _ in range(decision.scale_up):
            worker = self._provision()
            self._push(self.now_s + self._boot_time(), _READY, worker.index)
        self._dispatch()

    def _named(self, worker_ids: tuple[str, ...], *states: WorkerState) -> list[_Worker]:
        found = []
        for worker_id in worker_ids:
            index = int(worker_id[1:]) if worker_id[1:].isdigit() else -1
            worker = self.alive.get(index)
            if worker is None or worker.state not in states:
                raise ValueError(
                    f"{self.policy.name} named worker {worker_id!r}, expected one in state "
                    f"{[s.value for s in states]}; alive: {[w.worker_id for w in self.alive.values()]}"
                )
            found.append(worker)
        return found

    # -- results ----------------------------------------------------------------------------------

    def _record(self) -> None:
        alive = self.alive.values()
        starting = sum(1 for w in alive if w.state is WorkerState.STARTING)
        self.timeline.append(
            (self.now_s, starting + len(self.warm), len(self.warm), len(self.alive), len(self.queue))
        )

    def _result(self) -> SimulationResult:
        end_s = self.now_s
        for worker in list(self.alive.values()):
            self._destroy(worker)
        billed_s = sum(_billed_s(w, end_s) for w in self.workers)
        gpu_hours = billed_s * self.service.gpus_per_worker / 3600.0
        first = self.jobs.first_measured
        waits = self.wait_s[first:]
        columns = np.asarray(self.timeline, dtype=np.float64).reshape(-1, 5)
        return SimulationResult(
            policy=self.policy.name,
            trace=self.trace.name,
            service=self.service.name,
            jobs=int(waits.shape[0]),
            gpu_hours=gpu_hours,
            cost_usd=gpu_hours * self.service.price_usd_per_gpu_hour,
            waits=summarize_waits(waits, self.config.slo_wait_s),
            scale_events=self.scale_events,
            workers_provisioned=sum(1 for w in self.workers if w.provisioned_s >= 0),
            peak_workers=int(columns[:, 3].max()) if columns.size else 0,
            arrival_s=self.jobs.arrival_s[first:],
            wait_s=waits,
            timeline=Timeline(*(columns[:, i].copy() for i in range(5))),
        )


def _billed_s(worker: _Worker, end_s: float) -> float:
    """Seconds billed inside the measured period [0, end_s]: from provision to destroy."""
    destroyed_s = end_s if worker.destroyed_s is None else min(worker.destroyed_s, end_s)
    return max(0.0, destroyed_s - max(worker.provisioned_s, 0.0))


def simulate_trace(
    trace: Trace,
    policy: ScalingPolicy,
    service: ServiceModel,
    config: SimulationConfig | None = None,
    *,
    on_progress: Callable[[float], None] | None = None,
) -> SimulationResult:
    """Replay `trace` with `policy` deciding every `config.tick_s`; deterministic for a given seed.

    `policy` must be a fresh instance (policies keep history). `on_progress` receives the fraction of
    the trace replayed, now and then. Raises ValueError if the policy names a worker that does not
    exist or is in the wrong state.
    """
    return _Simulation(trace, policy, service, config or SimulationConfig(), on_progress).run()
