"""Prometheus metrics of the queue nodes, on a registry the app container owns (no global registry)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class NodeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs_total = Counter(
            "ferryman_jobs_total",
            "Jobs that entered a state, by state and region.",
            ["region", "state"],
            registry=registry,
        )
        self.dispatch_latency = Histogram(
            "ferryman_dispatch_latency_seconds",
            "From a job being ready to its dispatch frame being sent.",
            ["region"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.outcome_write_failures = Counter(
            "ferryman_outcome_write_failures_total",
            "Tries to record a job's outcome that the store did not take (each is retried with backoff), by "
            "kind: outage (unreachable, connection lost) or refused (the store rejected what it held).",
            ["region", "kind"],
            registry=registry,
        )
        self.completion_failures = Counter(
            "ferryman_completion_observer_failures_total",
            "Calls of a completion observer (webhooks, admission holds, autoscaler) that raised; dispatch goes on.",
            ["region", "observer"],
            registry=registry,
        )
        self.stale_messages = Counter(
            "ferryman_stale_worker_messages_total",
            "Worker messages rejected for an old fence token.",
            ["region"],
            registry=registry,
        )


class NodeGauges(Collector):
    """Gauges read from the live queue nodes at scrape time, so they are never out of date."""

    def __init__(self, snapshots: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "ferryman_jobs", "Jobs held by the queue node now, by state.", labels=["region", "state"]
        )
        depth = GaugeMetricFamily(
            "ferryman_queue_depth",
            "Queued jobs by model and priority class.",
            labels=["region", "model", "priority"],
        )
        workers = GaugeMetricFamily("ferryman_workers_connected", "Connected workers.", labels=["region"])
        free = GaugeMetricFamily("ferryman_worker_free_slots", "Free worker slots.", labels=["region"])
        quarantined = GaugeMetricFamily(
            "ferryman_workers_quarantined", "Connected workers in quarantine (no work).", labels=["region"]
        )
        unwritten = GaugeMetricFamily(
            "ferryman_unwritten_outcomes",
            "Jobs that ended but whose outcome the store has not taken yet (retrying with backoff).",
            labels=["region"],
        )
        for snap in self._snapshots():
            region = snap["region"]
            for state, count in snap["jobs"].items():
                jobs.add_metric([region, state], count)
            for (model, priority), count in snap["depth"].items():
                depth.add_metric([region, model, priority], count)
            workers.add_metric([region], snap["workers"])
            free.add_metric([region], snap["free_slots"])
            unwritten.add_metric([region], snap.get("unwritten_outcomes", 0))
            quarantined.add_metric([region], len(snap.get("quarantined_workers", ())))
        yield from (jobs, depth, workers, free, unwritten, quarantined)
