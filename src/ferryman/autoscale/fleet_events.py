"""What the autoscaler's fleets tell the rest of the platform: each rent and destroy (with its cost), the machines
held now, and how a rented machine gets its credentials (an Enroller).

Plain data and protocols: the container connects them to the audit log and to identity's enrolments, so the
autoscaler imports neither.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ferryman.types import Region

RENTED = "rented"
DESTROYED = "destroyed"


@dataclass(frozen=True, slots=True)
class FleetEvent:
    """One rent or destroy. `at` is wall-clock time; a destroy carries how long the machine was held and what
    that cost at its hourly price, which is what an operator compares with the provider's bill."""

    kind: str
    at: float
    region: Region
    model: str
    provider: str
    instance_id: str
    worker_id: str
    host_id: str
    price_usd_per_hour: float
    reason: str = ""
    held_seconds: float = 0.0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class InstanceView:
    """A machine the autoscaler holds now: `state` is starting (not registered yet), serving or draining."""

    worker_id: str
    instance_id: str
    model: str
    provider: str
    host_id: str
    price_usd_per_hour: float
    rented_at: float
    state: str


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A one-time secret for one machine; `id` names it to bind and retire it later."""

    id: str
    secret: str = field(repr=False)


class Enroller(Protocol):
    """Issues the one-time secret a rented machine trades for its worker token (identity.EnrolmentService)."""

    async def issue(self, *, region: Region, worker_id: str, models: Sequence[str]) -> Enrolment: ...

    async def bind(self, enrolment_id: str, instance_id: str) -> None: ...

    async def retire(self, enrolment_id: str) -> None: ...


FleetJournal = Callable[[FleetEvent], Awaitable[None]]
