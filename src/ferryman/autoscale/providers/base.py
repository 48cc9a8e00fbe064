"""The Provider protocol: where worker machines come from (a local process, a GPU marketplace, ...).

One small async interface, in the manner of httpx's transports: find offers, provision one with a
worker launch, list what runs, destroy by id. The autoscaler's executor needs nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from ferryman.errors import FerrymanError
from ferryman.types import Region


class ProviderError(FerrymanError, RuntimeError):
    """A provider refused or failed an operation. `retryable` says whether trying again may help.

    It never reaches a surface: the autoscaler logs it and tries again on a later tick.
    """

    code = "provider_error"

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class InstanceState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class OfferQuery:
    """What to rent: GPU model and count, where (by data region), and the limits on price and host.

    `region` is a residency constraint, not a preference: an EU queue gets only EU machines.
    """

    gpu_name: str
    region: Region
    num_gpus: int = 1
    max_price_usd_per_hour: float | None = None
    min_reliability: float = 0.0
    limit: int = 20


@dataclass(frozen=True, slots=True)
class Offer:
    """A machine that can be rented now. `host_id` identifies the physical host (for quarantine)."""

    offer_id: str
    provider: str
    gpu_name: str
    num_gpus: int
    price_usd_per_hour: float
    region: Region
    host_id: str
    reliability: float
    location: str = ""


@dataclass(frozen=True, slots=True)
class WorkerLaunch:
    """How a new worker reaches its region's queue node. The token is kept out of repr and logs.

    `worker_id` is the id the worker registers under, so the autoscaler can tell when the machine it rented
    has joined (its provisioning lag) and which instance to destroy when it drains the worker.
    """

    url: str
    token: str = field(repr=False)
    region: Region
    backend: str
    models: tuple[str, ...]
    slots: int = 1
    worker_id: str = ""


@dataclass(frozen=True, slots=True)
class Instance:
    """A provisioned machine running (or about to run) one worker agent."""

    instance_id: str
    provider: str
    region: Region
    state: InstanceState
    host_id: str
    price_usd_per_hour: float
    label: str = ""


class Provider(Protocol):
    """A source of worker machines. Every method may raise ProviderError; none blocks the loop."""

    name: str

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        """Offers matching `query`, cheapest first; never one outside `query.region`."""
        ...

    async def provision(self, offer: Offer, launch: WorkerLaunch) -> Instance:
        """Rent `offer` and start a worker on it with `launch`. Not idempotent: each call rents."""
        ...

    async def list(self) -> Sequence[Instance]:
        """The instances this provider started for Ferryman (not other workloads on the account)."""
        ...

    async def destroy(self, instance_id: str) -> None:
        """Stop billing for the instance. Idempotent: an unknown or already destroyed id is fine."""
        ...
