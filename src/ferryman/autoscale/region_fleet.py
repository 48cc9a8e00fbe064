"""One region's autoscaled fleets: build FleetSignals from the queue node, ask the policy, carry out the Decision.

Workers are drained on the node's side (`QueueNode.set_worker_draining`: no new jobs, as if the worker had sent
`drain`) and destroyed only once idle, so no job is ever killed by a scale-down. The protocol needs no new
message for that: destroying sends the worker process SIGTERM (or stops its machine) after its last job.
Workers this fleet did not provision count as capacity but are never drained or destroyed.

A machine that does not register within the boot timeout, whose worker vanishes, or whose worker the node
quarantines for failing jobs is destroyed, and a provider that keeps a host quarantine (Vast.ai) is told, so the
host is not rented again. Every rent and destroy goes to the journal (the audit log) with its hourly price and,
for a destroy, its cost. A region where the provider has no eligible offer tells its node, which reports
`no_eligible_offer` as the wait reason of the model's jobs: nothing is rented elsewhere.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
from collections import deque
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from ferryman import dispatch
from ferryman.clock import Clock
from ferryman.types import Priority, Region

from .estimators import ServiceTimeFit
from .fleet_events import DESTROYED, RENTED, Enroller, Enrolment, FleetEvent, FleetJournal, InstanceView
from .models import Decision, FleetSignals, ScalingPolicy, WorkerState, WorkerView
from .observer import DEFAULT_SERVICE_PRIOR, ModelTraffic, SignalWindows, TrafficObserver
from .providers import HostQuarantining, Offer, OfferQuery, Provider, ProviderError, WorkerLaunch

log = structlog.get_logger(__name__)
_LAG_SMOOTHING = 0.2
NO_ELIGIBLE_OFFER = "no_eligible_offer"
SPEND_CAP_REACHED = "spend_cap_reached"
EVENTS_KEPT = 200


@dataclass(frozen=True, slots=True)
class ManagedModel:
    """A model the autoscaler runs workers for: the backend that serves it and the slots of each worker."""

    name: str
    backend: str
    slots: int = 1


@dataclass(frozen=True, slots=True)
class FleetTargets:
    """Per priority class: the queue-wait objective and the time within which a backlog must clear."""

    wait_target_s: Mapping[Priority, float]
    deadline_s: Mapping[Priority, float]
    initial_lag_s: float = 30.0
    boot_timeout_s: float = 600.0
    gpu_name: str = "local"
    history: int = 50


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A decision as it was made (`at` is wall-clock time) and what the executor did about it."""

    at: float
    decision: Decision
    actions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FleetStatus:
    """One (region, model) fleet as the admin API and the metrics show it; `decisions` are oldest first."""

    region: Region
    model: str
    provider: str
    provisioning_lag_s: float
    spend_usd_per_hour: float
    decisions: tuple[DecisionRecord, ...]
    instances: tuple[InstanceView, ...] = ()
    spent_usd: float = 0.0


@dataclass(slots=True)
class _Instance:
    worker_id: str
    instance_id: str
    model: str
    price_usd_per_hour: float
    provisioned_mono: float
    host_id: str = ""
    provider: str = ""
    rented_at: float = 0.0
    enrolment_id: str | None = None
    attached: bool = False
    draining: bool = False
    drain_reason: str = "drained"
    idle_since_mono: float | None = None


@dataclass(slots=True)
class _Tick:
    """What one model's tick saw and did."""

    snapshot: dispatch.FleetSnapshot
    actions: list[str] = field(default_factory=list)


class RegionFleet:
    """The fleets of every managed model in one region, behind one provider. Touched only from its region's
    controller task (and `aclose`), one tick at a time."""

    def __init__(
        self,
        region: Region,
        *,
        node: dispatch.QueueNode,
        provider: Provider,
        launch_url: str,
        worker_token: str,
        models: Sequence[ManagedModel],
        policies: Mapping[str, ScalingPolicy],
        targets: FleetTargets,
        windows: SignalWindows,
        clock: Clock,
        spend_cap_usd_per_hour: float | None = None,
        prior: ServiceTimeFit = DEFAULT_SERVICE_PRIOR,
        model_providers: Mapping[str, Provider] | None = None,
        queries: Mapping[str, OfferQuery] | None = None,
        enroller: Enroller | None = None,
        journal: FleetJournal | None = None,
    ) -> None:
        """`provider` serves every model not in `model_providers`; `queries` is the offer filter per model
        (default: `targets.gpu_name` in this region). With an `enroller`, each launch carries a one-time
        enrolment secret for its machine; `journal` receives every rent and destroy."""
        self.region, self.node, self.provider = region, node, provider
        self._url, self._token = launch_url, worker_token
        self.models = {m.name: m for m in models}
        self._providers = {m: (model_providers or {}).get(m, provider) for m in self.models}
        self._queries = {
            m: (queries or {}).get(m) or OfferQuery(gpu_name=targets.gpu_name, region=region)
            for m in self.models
        }
        self._enroller, self._journal = enroller, journal
        self.events: deque[FleetEvent] = deque(maxlen=EVENTS_KEPT)
        self._spent: dict[str, float] = {}  # per model: machines destroyed so far (held ones: spent_now())
        self._policies, self._targets, self._clock = policies, targets, clock
        self._spend_cap = spend_cap_usd_per_hour
        self.observer = TrafficObserver(self.models, windows=windows, now_mono=clock.monotonic(), prior=prior)
        self.lag_s = targets.initial_lag_s
        self.prices: dict[str, float] = {}
        self.history: dict[str, deque[DecisionRecord]] = {
            m: deque(maxlen=targets.history) for m in self.models
        }
        self._instances: dict[str, _Instance] = {}
        self._numbers = itertools.count(1)
        self._lag_measured = False
        self._reaped = False

    @property
    def spend_usd_per_hour(self) -> float:
        return sum(i.price_usd_per_hour for i in self._instances.values())

    def provider_of(self, model: str) -> Provider:
        return self._providers[model]

    def spend_of(self, model: str) -> float:
        return sum(i.price_usd_per_hour for i in self._instances.values() if i.model == model)

    def spent_now(self, model: str | None = None) -> float:
        """Dollars spent on this region's machines (of `model`, if given) since the process started: destroyed
        ones at their hourly price for the time held, plus what the held ones have accrued so far."""
        now = self._clock.monotonic()
        done = sum(cost for m, cost in self._spent.items() if model in (None, m))
        held = sum(
            i.price_usd_per_hour * (now - i.provisioned_mono) / 3600
            for i in self._instances.values()
            if model in (None, i.model)
        )
        return done + held

    def instances(self, model: str | None = None) -> tuple[InstanceView, ...]:
        return tuple(
            InstanceView(
                i.worker_id,
                i.instance_id,
                i.model,
                i.provider,
                i.host_id,
                i.price_usd_per_hour,
                i.rented_at,
                "draining" if i.draining else "serving" if i.attached else "starting",
            )
            for i in self._instances.values()
            if model in (None, i.model)
        )

    def traffic(self, model: str) -> ModelTraffic:
        return self.observer.models[model]

    async def tick(self) -> list[DecisionRecord]:
        """Decide and act once for every managed model; provider failures are logged, never raised."""
        records = []
        for model in self.models:
            tick = _Tick(self.node.fleet_snapshot(model))
            if not self._reaped:
                self._reaped = await self._reap_orphans(tick.actions)
            await self._reconcile(model, tick)
            decision = self._policies[model].decide(await self._signals(model, tick.snapshot))
            await self._execute(decision, tick)
            record = DecisionRecord(self._clock.now(), decision, tuple(tick.actions))
            self.history[model].append(record)
            records.append(record)
        return records

    async def aclose(self) -> None:
        """Destroy every instance this fleet provisioned (the process is stopping; nothing will reap them)."""
        for instance in tuple(self._instances.values()):
            await self._destroy(instance, "shutdown", [])

    # -- signals

    async def _signals(self, model: str, snapshot: dispatch.FleetSnapshot) -> FleetSignals:
        now = snapshot.at_mono
        traffic = self.traffic(model)
        workers = self._worker_views(model, snapshot)
        traffic.demand.observe(now, sum(w.busy_slots for w in workers) + snapshot.queue_depth)
        priority = traffic.priority_at(now)
        short, long = traffic.short.window_at(now), traffic.long.window_at(now)
        # sized by the recent mean job: the node keeps no per-job token counts for the queue
        depth = snapshot.queue_depth
        return FleetSignals(
            region=self.region,
            model=model,
            priority=priority,
            now_s=now,
            short=short,
            long=long,
            service=traffic.service.fit(),
            demand_peakedness=traffic.demand.peakedness,
            queue_depth=depth,
            queued_prompt_tokens=round(depth * short.mean_prompt_tokens),
            queued_output_tokens=round(depth * short.mean_output_tokens),
            oldest_job_age_s=snapshot.oldest_job_age_s,
            workers=workers,
            provisioning_lag_s=self.lag_s,
            wait_target_s=self._targets.wait_target_s[priority],
            deadline_s=self._targets.deadline_s[priority],
            slots_per_worker=self.models[model].slots,
            price_usd_per_worker_hour=await self._price(model),
        )

    def _worker_views(self, model: str, snapshot: dispatch.FleetSnapshot) -> tuple[WorkerView, ...]:
        views = []
        attached = {w.worker_id for w in snapshot.workers}
        for w in snapshot.workers:
            instance = self._instances.get(w.worker_id)
            state = WorkerState.WARM if w.in_service else WorkerState.DRAINING
            idle_since = (
                None if w.busy_slots else (instance.idle_since_mono if instance else snapshot.at_mono)
            )
            provisioned = instance.provisioned_mono if instance else w.connected_mono
            views.append(WorkerView(w.worker_id, state, w.slots, w.busy_slots, provisioned, idle_since))
        for i in self._instances.values():
            if i.model == model and i.worker_id not in attached:
                views.append(
                    WorkerView(
                        i.worker_id, WorkerState.STARTING, self.models[model].slots, 0, i.provisioned_mono
                    )
                )
        return tuple(views)

    async def _price(self, model: str) -> float:
        if model not in self.prices:
            offer = await self._cheapest_offer(model, [])
            return offer.price_usd_per_hour if offer else 0.0
        return self.prices[model]

    # -- keeping track of what runs

    async def _reconcile(self, model: str, tick: _Tick) -> None:
        """Notice workers that joined (measuring the provisioning lag), went idle, vanished or never came."""
        snapshot = tick.snapshot
        seen = {w.worker_id: w for w in snapshot.workers}
        for instance in [i for i in self._instances.values() if i.model == model]:
            worker = seen.get(instance.worker_id)
            if worker is None:
                if instance.attached:
                    self._report_crash(instance)
                    await self._destroy(instance, "worker_lost", tick.actions)
                elif snapshot.at_mono - instance.provisioned_mono > self._targets.boot_timeout_s:
                    self._quarantine(instance, "its worker did not register within the boot timeout")
                    await self._destroy(instance, "boot_timed_out", tick.actions)
                continue
            if not instance.attached:
                instance.attached = True
                self._measure_lag(worker.connected_mono - instance.provisioned_mono)
            if worker.quarantined and not instance.draining:
                # the node quarantined it for failing jobs that then succeeded elsewhere: replace the machine
                self._quarantine(instance, "its worker kept failing jobs")
                self.node.set_worker_draining(instance.worker_id, True)
                instance.draining, instance.drain_reason = True, "worker_failing"
                tick.actions.append(f"draining {instance.worker_id}: worker failing")
            if worker.busy_slots:
                instance.idle_since_mono = None
            elif instance.idle_since_mono is None:
                instance.idle_since_mono = snapshot.at_mono
            if instance.draining and not worker.busy_slots:
                await self._destroy(instance, instance.drain_reason, tick.actions)

    async def _reap_orphans(self, actions: list[str]) -> bool:
        """Destroy the machines of this region a provider still runs for us but this fleet does not hold: a
        process that crashed (or was killed) left them billing. Once, before the first decision; True when done
        (a provider that failed to list is asked again next tick)."""
        for provider in {id(p): p for p in self._providers.values()}.values():
            try:
                running = await provider.list()
            except ProviderError as exc:
                self._provider_failed("list", exc, actions)
                return False
            ours = {i.instance_id for i in self._instances.values()}
            for orphan in [i for i in running if i.region is self.region and i.instance_id not in ours]:
                try:
                    await provider.destroy(orphan.instance_id)
                except ProviderError as exc:
                    self._provider_failed("destroy", exc, actions)
                    return False
                actions.append(f"destroyed {orphan.instance_id} (orphaned)")
                log.warning(
                    "autoscaler.orphan_destroyed",
                    region=self.region,
                    provider=provider.name,
                    instance_id=orphan.instance_id,
                    host_id=orphan.host_id,
                )
                gone = _Instance(
                    "", orphan.instance_id, "", orphan.price_usd_per_hour, self._clock.monotonic(),
                    host_id=orphan.host_id, provider=provider.name,
                )  # fmt: skip
                await self._record(gone, DESTROYED, "orphaned")
        return True

    def _measure_lag(self, lag_s: float) -> None:
        if not self._lag_measured:
            self.lag_s, self._lag_measured = lag_s, True
        else:
            self.lag_s += _LAG_SMOOTHING * (lag_s - self.lag_s)

    # -- carrying a decision out

    async def _execute(self, decision: Decision, tick: _Tick) -> None:
        busy = {w.worker_id: w.busy_slots for w in tick.snapshot.workers}
        for worker_id in decision.resume:
            instance = self._instances.get(worker_id)
            if instance is not None and instance.draining and self.node.set_worker_draining(worker_id, False):
                instance.draining = False
                tick.actions.append(f"resumed {worker_id}")
        for worker_id in decision.drain:
            await self._drain(worker_id, busy, tick.actions)
        await self._provision(decision.signals, decision.scale_up, tick.actions)

    async def _drain(self, worker_id: str, busy: Mapping[str, int], actions: list[str]) -> None:
        instance = self._instances.get(worker_id)
        if instance is None:
            actions.append(f"kept {worker_id}: not provisioned by the autoscaler")
        elif not instance.attached:
            await self._destroy(instance, "cancelled", actions)
        else:
            self.node.set_worker_draining(worker_id, True)
            instance.draining = True
            if busy.get(worker_id, 0) == 0:
                await self._destroy(instance, "drained", actions)
            else:
                actions.append(f"draining {worker_id}")

    async def _provision(self, signals: FleetSignals, count: int, actions: list[str]) -> None:
        model = self.models[signals.model]
        provider = self._providers[model.name]
        for _ in range(count):
            offer = await self._cheapest_offer(model.name, actions)
            if offer is None:
                return
            if (
                self._spend_cap is not None
                and self.spend_usd_per_hour + offer.price_usd_per_hour > self._spend_cap
            ):
                actions.append(f"spend cap {self._spend_cap:.2f} $/h reached")
                self._hint(model.name, SPEND_CAP_REACHED)
                return
            worker_id = f"as-{self.region.value}-{next(self._numbers)}-{secrets.token_hex(3)}"
            enrolment = await self._enrol(worker_id, model.name, actions)
            if self._enroller is not None and enrolment is None:
                return
            launch = WorkerLaunch(
                url=self._url,
                token=self._token,
                region=self.region,
                backend=model.backend,
                models=(model.name,),
                slots=model.slots,
                worker_id=worker_id,
                enrolment_secret=enrolment.secret if enrolment else "",
            )
            try:
                instance = await provider.provision(offer, launch)
            except ProviderError as exc:
                self._provider_failed("provision", exc, actions)
                await self._retire(enrolment)
                return
            held = _Instance(
                worker_id,
                instance.instance_id,
                model.name,
                instance.price_usd_per_hour,
                self._clock.monotonic(),
                host_id=instance.host_id,
                provider=provider.name,
                rented_at=self._clock.now(),
                enrolment_id=enrolment.id if enrolment else None,
            )
            self._instances[worker_id] = held
            self.node.set_wait_hint(model.name, None)
            if self._enroller is not None and enrolment is not None:
                await self._quietly("enrolment bind", self._enroller.bind(enrolment.id, instance.instance_id))
            actions.append(f"provisioned {worker_id} ({instance.instance_id})")
            log.info(
                "autoscaler.provisioned",
                region=self.region,
                model=model.name,
                worker_id=worker_id,
                instance_id=instance.instance_id,
                provider=provider.name,
                host_id=instance.host_id,
                price_usd_per_hour=instance.price_usd_per_hour,
            )
            await self._record(held, RENTED)

    async def _enrol(self, worker_id: str, model: str, actions: list[str]) -> Enrolment | None:
        if self._enroller is None:
            return None
        try:
            return await self._enroller.issue(region=self.region, worker_id=worker_id, models=(model,))
        except (
            Exception
        ) as exc:  # the store refused: rent nothing this tick rather than a machine that can't join
            actions.append(f"enrolment failed: {type(exc).__name__}")
            log.warning("autoscaler.enrolment_failed", region=self.region, error=type(exc).__name__)
            return None

    async def _retire(self, enrolment: Enrolment | None) -> None:
        if self._enroller is not None and enrolment is not None:
            await self._quietly("enrolment retire", self._enroller.retire(enrolment.id))

    async def _cheapest_offer(self, model: str, actions: list[str]) -> Offer | None:
        provider = self._providers[model]
        try:
            offers = await provider.offers(self._queries[model])
        except ProviderError as exc:
            self._provider_failed("offers", exc, actions)
            return None
        if not offers:
            actions.append(f"no eligible offer from {provider.name} in {self.region.value}")
            self._hint(model, NO_ELIGIBLE_OFFER)
            return None
        cheapest = min(offers, key=lambda o: o.price_usd_per_hour)
        self.prices[model] = cheapest.price_usd_per_hour
        self.node.set_wait_hint(model, None)  # there is an offer again: the jobs wait as usual
        return cheapest

    def _hint(self, model: str, reason: str) -> None:
        """Tell the node why the model's jobs wait, unless a machine for it is already coming."""
        if not any(i.model == model for i in self._instances.values()):
            self.node.set_wait_hint(model, reason)

    def _quarantine(self, instance: _Instance, reason: str) -> None:
        provider = self._providers[instance.model]
        if isinstance(provider, HostQuarantining):
            try:
                provider.report_unhealthy(instance.instance_id, reason)
            except ProviderError as exc:
                log.warning("autoscaler.quarantine_failed", region=self.region, error=str(exc))
                return
            log.warning(
                "autoscaler.host_quarantined",
                region=self.region,
                provider=provider.name,
                host_id=instance.host_id,
                instance_id=instance.instance_id,
                reason=reason,
            )

    def _report_crash(self, instance: _Instance) -> None:
        provider = self._providers[instance.model]
        if isinstance(provider, HostQuarantining):
            with contextlib.suppress(ProviderError):
                provider.report_crash(instance.instance_id)

    async def _destroy(self, instance: _Instance, why: str, actions: list[str]) -> None:
        provider = self._providers[instance.model]
        try:
            await provider.destroy(instance.instance_id)
        except ProviderError as exc:
            self._provider_failed("destroy", exc, actions)
            return  # still ours: the next tick tries again
        self._instances.pop(instance.worker_id, None)
        if instance.enrolment_id is not None and self._enroller is not None:
            # its secret can no longer be spent and the token it gave is revoked
            await self._quietly("enrolment retire", self._enroller.retire(instance.enrolment_id))
        actions.append(f"destroyed {instance.worker_id} ({why})")
        log.info(
            "autoscaler.destroyed",
            region=self.region,
            model=instance.model,
            worker_id=instance.worker_id,
            instance_id=instance.instance_id,
            reason=why,
        )
        await self._record(instance, DESTROYED, why)

    async def _record(self, instance: _Instance, kind: str, reason: str = "") -> None:
        held_s = self._clock.monotonic() - instance.provisioned_mono if kind == DESTROYED else 0.0
        cost = instance.price_usd_per_hour * held_s / 3600
        event = FleetEvent(
            kind=kind,
            at=self._clock.now(),
            region=self.region,
            model=instance.model,
            provider=instance.provider,
            instance_id=instance.instance_id,
            worker_id=instance.worker_id,
            host_id=instance.host_id,
            price_usd_per_hour=instance.price_usd_per_hour,
            reason=reason,
            held_seconds=held_s,
            cost_usd=cost,
        )
        if kind == DESTROYED:
            self._spent[instance.model] = self._spent.get(instance.model, 0.0) + cost
        self.events.append(event)
        if self._journal is not None:
            await self._quietly("journal", self._journal(event))

    async def _quietly(self, what: str, call: Awaitable[None]) -> None:
        """A bookkeeping write that failed (a store outage) must not stop the fleet: log it, go on."""
        try:
            await call
        except Exception as exc:
            log.error(
                "autoscaler.bookkeeping_failed", region=self.region, what=what, error=type(exc).__name__
            )

    def _provider_failed(self, operation: str, exc: ProviderError, actions: list[str]) -> None:
        actions.append(f"{operation} failed: {exc}")
        log.warning(
            "autoscaler.provider_failed",
            region=self.region,
            operation=operation,
            error=str(exc),
            retryable=exc.retryable,
        )
