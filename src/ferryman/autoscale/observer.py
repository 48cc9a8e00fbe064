"""Live traffic of a region's managed models: the estimators a queue node feeds through NodeObserver.

Each arrival costs a few float updates and each finished job one 3x3 update; nothing is kept per job. A job's
size is known exactly only when it finishes, so arrivals are sized by estimate: prompt tokens from the text in
the payload, output tokens from `max_tokens` or the model's recent mean output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ferryman.jobs import Job, JobState
from ferryman.types import Priority

from .estimators import ArrivalEstimator, PeakednessEstimator, ServiceTimeEstimator, ServiceTimeFit

# a rough mean over English text and common tokenizers; only used to size jobs before they run
CHARS_PER_TOKEN = 4.0
# before any report: one second a job, plus a modest GPU's prefill and decode speeds; reports soon outweigh it
DEFAULT_SERVICE_PRIOR = ServiceTimeFit(base_s=1.0, per_prompt_token_s=1 / 5000, per_output_token_s=1 / 30)
_OUTPUT_SMOOTHING = 0.1


@dataclass(frozen=True, slots=True)
class SignalWindows:
    """EWMA time constants: arrivals over `short_s` and `long_s`; peakedness moments over `short_s`,
    remembered for `long_s` (the simulator's defaults, docs/autoscaler.md)."""

    short_s: float = 60.0
    long_s: float = 600.0


class ModelTraffic:
    """Arrivals, service time by size, demand peakedness and recent priority classes of one model."""

    def __init__(self, windows: SignalWindows, *, now_mono: float, prior: ServiceTimeFit) -> None:
        self.windows = windows
        self.short = ArrivalEstimator(windows.short_s, now_s=now_mono)
        self.long = ArrivalEstimator(windows.long_s, now_s=now_mono)
        self.service = ServiceTimeEstimator(prior)
        self.demand = PeakednessEstimator(windows.short_s, windows.long_s)
        self.mean_output_tokens = 0.0
        self._class_seen_mono: dict[Priority, float] = {}
        self._last_class: Priority | None = None

    def arrived(self, priority: Priority, payload: Mapping[str, Any], at_mono: float) -> None:
        prompt_tokens = round(text_chars(payload) / CHARS_PER_TOKEN)
        output_tokens = round(self.mean_output_tokens)
        max_tokens = payload.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens >= 0:
            output_tokens = min(output_tokens, max_tokens)
        self.short.observe(at_mono, prompt_tokens, output_tokens)
        self.long.observe(at_mono, prompt_tokens, output_tokens)
        self._class_seen_mono[priority] = at_mono
        self._last_class = priority

    def succeeded(self, usage: Mapping[str, Any], work_ms: float) -> None:
        prompt_tokens = _count(usage.get("prompt_tokens", usage.get("input_tokens")))
        output_tokens = _count(usage.get("completion_tokens", usage.get("output_tokens")))
        self.service.observe(prompt_tokens, output_tokens, work_ms / 1000)
        if self.service.reports == 1:
            self.mean_output_tokens = float(output_tokens)
        else:
            self.mean_output_tokens += _OUTPUT_SMOOTHING * (output_tokens - self.mean_output_tokens)

    def priority_at(self, now_mono: float) -> Priority:
        """The most urgent class seen within the long window, else the last class seen, else interactive.

        A model that has had only batch jobs lately is batch-only, so it may scale to zero; one interactive
        job makes it interactive again for a whole long window.
        """
        recent = [p for p, at in self._class_seen_mono.items() if now_mono - at <= self.windows.long_s]
        if recent:
            return min(recent, key=lambda p: p.rank)
        return self._last_class or Priority.INTERACTIVE


class TrafficObserver:
    """The NodeObserver of one region: feeds a ModelTraffic per managed model and ignores the others."""

    def __init__(
        self,
        models: Iterable[str],
        *,
        windows: SignalWindows,
        now_mono: float,
        prior: ServiceTimeFit = DEFAULT_SERVICE_PRIOR,
    ) -> None:
        self.models = {m: ModelTraffic(windows, now_mono=now_mono, prior=prior) for m in models}

    def job_queued(self, job: Job, payload: dict[str, Any], at_mono: float) -> None:
        traffic = self.models.get(job.model)
        if traffic is not None:
            traffic.arrived(job.priority, payload, at_mono)

    def job_finished(self, job: Job, at_mono: float) -> None:
        traffic = self.models.get(job.model)
        work_ms = job.timings.work_ms
        if traffic is not None and job.state is JobState.SUCCEEDED and work_ms is not None:
            traffic.succeeded(job.usage, work_ms)


def text_chars(value: object, *, depth: int = 0) -> int:
    """Characters of text in a JSON payload (message contents, prompt, input), ignoring keys and numbers.

    Depth-limited so a hostile payload cannot make the node recurse without end; media arrive as URLs or
    blob references and count as their (short) text.
    """
    if isinstance(value, str):
        return len(value)
    if depth >= 6:
        return 0
    if isinstance(value, Mapping):
        return sum(text_chars(v, depth=depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(text_chars(v, depth=depth + 1) for v in value)
    return 0


def _count(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
