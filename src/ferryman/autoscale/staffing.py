"""Square-root staffing (Halfin-Whitt) with the headroom coefficient chosen from a wait target.

With c slots, offered load L and c = L + β·√L, the probability that a job waits at all tends to
α(β) = 1 / (1 + β·Φ(β)/φ(β)) (Halfin & Whitt, "Heavy-traffic limits for queues with many
exponential servers", Operations Research 1981), and a job that waits is served at the rate the
spare slots free up, (c − L)/S, so

    P(wait > t) ≈ α(β) · exp(−β·√L · t / S).

For bursty traffic we use Hayward's approximation: a stream of peakedness z behaves like Poisson
traffic of load L/z offered to c/z servers (jobs arrive, and leave, z at a time). So the headroom is
c − L = β·√(z·L) and the wait tail decays as exp(−β·√(L/z)·t/S). We solve for the smallest β that
keeps P(wait > t) at or below the miss target.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_NORMAL = NormalDist()
_MAX_BETA = 6.0


def delay_probability(beta: float) -> float:
    """Halfin-Whitt limit of P(wait > 0) for square-root staffing coefficient beta ≥ 0."""
    if beta <= 0:
        return 1.0
    return 1.0 / (1.0 + beta * _NORMAL.cdf(beta) / _NORMAL.pdf(beta))


def wait_miss_probability(
    beta: float, *, load: float, peakedness: float, service_s: float, wait_s: float
) -> float:
    """Approximate P(wait > wait_s) with c = L + beta·√(z·L) slots (peakedness z ≥ 1)."""
    scaled_load = load / max(1.0, peakedness)
    decay = beta * math.sqrt(scaled_load) * wait_s / service_s if service_s > 0 else math.inf
    return delay_probability(beta) * math.exp(-decay)


def headroom_beta(*, load: float, peakedness: float, service_s: float, wait_s: float, miss: float) -> float:
    """Smallest beta in [0, 6] with P(wait > wait_s) ≤ miss (bisection; the probability falls with beta).

    Returns 0 when there is no load, and 6 when even that misses the target.
    """
    if load <= 0 or miss >= 1.0:
        return 0.0

    def misses(beta: float) -> bool:
        return (
            wait_miss_probability(beta, load=load, peakedness=peakedness, service_s=service_s, wait_s=wait_s)
            > miss
        )

    if misses(_MAX_BETA):
        return _MAX_BETA
    low, high = 0.0, _MAX_BETA
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if misses(middle) else (low, middle)
    return high
