"""Prometheus metrics of the autoscaler, on the registry the app container owns (no global registry).

Counters move as decisions are made; gauges are read from the fleets at scrape time, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .region_fleet import DecisionRecord, FleetStatus


class AutoscalerMetrics:
    """Counts decisions by what they did: `hold`, `scale_up`, `resume` or `drain` (one decision may do several)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions_total = Counter(
            "ferryman_autoscaler_decisions_total",
            "Autoscaler decisions by region, model and action (hold, scale_up, resume, drain).",
            ["region", "model", "action"],
            registry=registry,
        )

    def count(self, record: DecisionRecord) -> None:
        decision, signals = record.decision, record.decision.signals
        actions = [
            name
            for name, taken in (
                ("scale_up", decision.scale_up),
                ("resume", decision.resume),
                ("drain", decision.drain),
            )
            if taken
        ] or ["hold"]
        for action in actions:
            self.decisions_total.labels(signals.region.value, signals.model, action).inc()


class AutoscalerGauges(Collector):
    """The latest decision of every fleet: desired and current workers, arrivals, load, lag and spend."""

    def __init__(self, status: Callable[[], Iterable[FleetStatus]]) -> None:
        self._status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fleet = ["region", "model"]
        desired = GaugeMetricFamily(
            "ferryman_autoscaler_desired_workers", "Workers the policy wants.", labels=fleet
        )
        workers = GaugeMetricFamily(
            "ferryman_autoscaler_workers",
            "Workers by state (starting, warm, draining).",
            labels=[*fleet, "state"],
        )
        arrivals = GaugeMetricFamily(
            "ferryman_autoscaler_arrival_rate_per_second",
            "Job arrival rate (EWMA) by window (short, long).",
            labels=[*fleet, "window"],
        )
        load = GaugeMetricFamily(
            "ferryman_autoscaler_offered_load_slots",
            "Offered load: arrival rate x learned service time (short window).",
            labels=fleet,
        )
        depth = GaugeMetricFamily(
            "ferryman_autoscaler_queue_depth", "Queued jobs the policy saw.", labels=fleet
        )
        lag = GaugeMetricFamily(
            "ferryman_autoscaler_provisioning_lag_seconds",
            "Measured time from provision to the worker registering.",
            labels=["region", "provider"],
        )
        spend = GaugeMetricFamily(
            "ferryman_autoscaler_spend_usd_per_hour",
            "Hourly price of the workers the autoscaler runs.",
            labels=["region", "provider"],
        )
        providers: set[tuple[str, str]] = set()
        for status in self._status():
            region = status.region.value
            if (region, status.provider) not in providers:  # one provider serves all models of a region
                providers.add((region, status.provider))
                lag.add_metric([region, status.provider], status.provisioning_lag_s)
                spend.add_metric([region, status.provider], status.spend_usd_per_hour)
            if not status.decisions:
                continue
            decision = status.decisions[-1].decision
            signals, labels = decision.signals, [region, status.model]
            desired.add_metric(labels, decision.desired_workers)
            for state, count in (
                ("starting", signals.starting),
                ("warm", signals.warm),
                ("draining", signals.draining),
            ):
                workers.add_metric([*labels, state], count)
            arrivals.add_metric([*labels, "short"], signals.short.rate_per_s)
            arrivals.add_metric([*labels, "long"], signals.long.rate_per_s)
            load.add_metric(labels, signals.offered_load(signals.short))
            depth.add_metric(labels, signals.queue_depth)
        yield from (desired, workers, arrivals, load, depth, lag, spend)
