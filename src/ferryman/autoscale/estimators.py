"""Online estimators the queue node feeds: arrival rates (EWMA) and job service time by size.

Both are O(1) per observation so the node can update them on every job without a buffer, and both
answer "as of now" without a timer: an estimator nobody has touched for a minute still decays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Features are scaled so the ridge prior is equally weak in every direction.
_PROMPT_SCALE = 1000.0
_OUTPUT_SCALE = 100.0


class RateEstimator:
    """Exponentially weighted event rate with time constant `window_s` (events or weight per second).

    rate(t) = Σ w_i · exp(-(t - t_i)/τ) / τ, which is unbiased for a steady Poisson stream. Weighted
    observations (say, prompt tokens per job) give token rates; a token rate divided by the job rate
    is the recent mean job size.
    """

    def __init__(self, window_s: float, *, initial_per_s: float = 0.0, now_s: float = 0.0) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_s = window_s
        self._rate = initial_per_s
        self._at_s = now_s

    def observe(self, now_s: float, weight: float = 1.0) -> None:
        """Record an event of `weight` at `now_s` (times must not go backwards)."""
        self._rate = self.rate_at(now_s) + weight / self.window_s
        self._at_s = max(self._at_s, now_s)

    def rate_at(self, now_s: float) -> float:
        """The estimate at `now_s`, decayed since the last observation."""
        elapsed = max(0.0, now_s - self._at_s)
        return self._rate * math.exp(-elapsed / self.window_s)


@dataclass(frozen=True, slots=True)
class ArrivalWindow:
    """Arrivals over one EWMA window: the rate and the mean job size."""

    window_s: float
    rate_per_s: float
    mean_prompt_tokens: float
    mean_output_tokens: float


class ArrivalEstimator:
    """Job rate and mean job size over one EWMA window, from the jobs the queue node accepts."""

    def __init__(self, window_s: float, *, now_s: float = 0.0, initial: ArrivalWindow | None = None) -> None:
        """`initial` seeds the estimate as if arrivals had been steady at that rate and size."""
        self.window_s = window_s
        rate = initial.rate_per_s if initial else 0.0
        prompt = rate * initial.mean_prompt_tokens if initial else 0.0
        output = rate * initial.mean_output_tokens if initial else 0.0
        self._jobs = RateEstimator(window_s, initial_per_s=rate, now_s=now_s)
        self._prompt = RateEstimator(window_s, initial_per_s=prompt, now_s=now_s)
        self._output = RateEstimator(window_s, initial_per_s=output, now_s=now_s)

    def observe(self, now_s: float, prompt_tokens: int, output_tokens: int) -> None:
        self._jobs.observe(now_s)
        self._prompt.observe(now_s, prompt_tokens)
        self._output.observe(now_s, output_tokens)

    def window_at(self, now_s: float) -> ArrivalWindow:
        """The window as of `now_s`; mean sizes are 0 before the first job."""
        rate = self._jobs.rate_at(now_s)
        per_job = 1.0 / rate if rate > 0 else 0.0
        return ArrivalWindow(
            self.window_s,
            rate,
            self._prompt.rate_at(now_s) * per_job,
            self._output.rate_at(now_s) * per_job,
        )


class PeakednessEstimator:
    """Peakedness of the demand: variance over mean of the jobs running or queued.

    For Poisson arrivals the jobs in an uncongested system are Poisson, so the ratio is 1; bursty
    clients push it far higher. Moments are taken over a short window (`window_s`), so a slow change
    of the rate does not pass for burstiness, and the ratio is then averaged over `memory_s`, so a
    workload that was bursty a few minutes ago is still treated as bursty. Samples while the demand
    is below `min_mean` carry no information about the ratio and leave it unchanged.
    """

    def __init__(self, window_s: float, memory_s: float, *, min_mean: float = 0.5) -> None:
        if window_s <= 0 or memory_s <= 0:
            raise ValueError(f"windows must be positive, got {window_s} and {memory_s}")
        self.window_s, self.memory_s, self.min_mean = window_s, memory_s, min_mean
        self._mean = self._square = 0.0
        self._ratio = 1.0
        self._first_s: float | None = None
        self._at_s = 0.0

    def observe(self, now_s: float, demand: float) -> None:
        """Record the number of jobs running or queued at `now_s` (samples in time order)."""
        if self._first_s is None:
            # start as if the demand had been steady and Poisson, so the first ramp is no burst
            self._first_s, self._at_s = now_s, now_s
            self._mean, self._square = demand, demand * demand + demand
            return
        elapsed = max(0.0, now_s - self._at_s)
        self._at_s = max(self._at_s, now_s)
        weight = 1.0 - math.exp(-elapsed / self.window_s)
        self._mean += weight * (demand - self._mean)
        self._square += weight * (demand * demand - self._square)
        if self._mean >= self.min_mean and now_s - self._first_s >= self.window_s:
            ratio = max(0.0, self._square - self._mean * self._mean) / self._mean
            self._ratio += (1.0 - math.exp(-elapsed / self.memory_s)) * (ratio - self._ratio)

    @property
    def peakedness(self) -> float:
        return self._ratio


@dataclass(frozen=True, slots=True)
class ServiceTimeFit:
    """seconds ≈ base_s + per_prompt_token_s · prompt_tokens + per_output_token_s · output_tokens.

    Linear in the token counts, so the work in a queue is the fit applied to its token totals.
    """

    base_s: float
    per_prompt_token_s: float
    per_output_token_s: float

    def predict_s(self, prompt_tokens: float, output_tokens: float, jobs: float = 1.0) -> float:
        """Predicted slot-seconds for `jobs` jobs with these token totals (never negative)."""
        seconds = (
            self.base_s * jobs
            + self.per_prompt_token_s * prompt_tokens
            + self.per_output_token_s * output_tokens
        )
        return max(0.0, seconds)


class ServiceTimeEstimator:
    """Recursive least squares with forgetting, fed by workers' reports of finished jobs.

    Each report (prompt tokens, output tokens, seconds the job held its slot) updates the normal
    equations, discounted by `forgetting` per report so the fit follows a backend that gets faster or
    slower. A weak ridge prior toward `prior` keeps the fit defined before the first reports arrive.
    """

    def __init__(
        self,
        prior: ServiceTimeFit,
        *,
        forgetting: float = 0.999,
        prior_weight: float = 1.0,
    ) -> None:
        if not 0.0 < forgetting <= 1.0:
            raise ValueError(f"forgetting must be in (0, 1], got {forgetting}")
        self._forgetting = forgetting
        self._prior_weight = prior_weight
        self._prior = _to_scaled(prior)
        self._xtx = [[0.0] * 3 for _ in range(3)]
        self._xty = [0.0] * 3
        self._fit: ServiceTimeFit | None = prior
        self.reports = 0

    def observe(self, prompt_tokens: int, output_tokens: int, seconds: float) -> None:
        """Record one finished job; reports with negative seconds are ignored as clock errors."""
        if seconds < 0:
            return
        x = (1.0, prompt_tokens / _PROMPT_SCALE, output_tokens / _OUTPUT_SCALE)
        keep = self._forgetting
        for i in range(3):
            row = self._xtx[i]
            for j in range(3):
                row[j] = row[j] * keep + x[i] * x[j]
            self._xty[i] = self._xty[i] * keep + x[i] * seconds
        self.reports += 1
        self._fit = None

    def fit(self) -> ServiceTimeFit:
        """The current coefficients (cached until the next report)."""
        if self._fit is None:
            ridge = self._prior_weight * np.eye(3)
            lhs = np.asarray(self._xtx) + ridge
            rhs = np.asarray(self._xty) + ridge @ np.asarray(self._prior)
            base, prompt, output = (float(v) for v in np.linalg.solve(lhs, rhs))
            self._fit = ServiceTimeFit(base, prompt / _PROMPT_SCALE, output / _OUTPUT_SCALE)
        return self._fit


def _to_scaled(fit: ServiceTimeFit) -> tuple[float, float, float]:
    return (fit.base_s, fit.per_prompt_token_s * _PROMPT_SCALE, fit.per_output_token_s * _OUTPUT_SCALE)
