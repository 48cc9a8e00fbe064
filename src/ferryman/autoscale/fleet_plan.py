"""From a desired worker count to concrete actions: which workers to resume, drain, or provision.

Shared by every policy so that comparisons measure the decision rule, not the bookkeeping.
"""

from __future__ import annotations

from .models import Decision, FleetSignals, WorkerState, WorkerView


def plan_fleet(signals: FleetSignals, desired: int, reason: str) -> Decision:
    """Move the active fleet (starting + warm) toward `desired` workers.

    Growing resumes draining workers first (they are already warm and billed), then provisions.
    Shrinking cancels starting workers first (newest first: most boot left), then drains idle warm
    workers, then the least busy ones. Idempotent for unchanged signals.
    """
    desired = max(0, desired)
    active = signals.active
    if desired > active:
        draining = sorted(
            (w for w in signals.workers if w.state is WorkerState.DRAINING),
            key=lambda w: -w.busy_slots,
        )
        resume = tuple(w.worker_id for w in draining[: desired - active])
        return Decision(desired, desired - active - len(resume), resume, (), reason, signals)
    if desired < active:
        drain = tuple(w.worker_id for w in _drain_order(signals.workers)[: active - desired])
        return Decision(desired, 0, (), drain, reason, signals)
    return Decision(desired, 0, (), (), reason, signals)


def _drain_order(workers: tuple[WorkerView, ...]) -> list[WorkerView]:
    starting = sorted((w for w in workers if w.state is WorkerState.STARTING), key=lambda w: -w.provisioned_s)
    warm = sorted(
        (w for w in workers if w.state is WorkerState.WARM),
        key=lambda w: (w.busy_slots, w.idle_since_s if w.idle_since_s is not None else float("inf")),
    )
    return starting + warm
