"""The Provider protocol: where worker machines come from (a local process, a GPU marketplace, ...).

One small async interface, in the manner of httpx's transports: find offers, provision one with a
worker launch, list what runs, destroy by id. The autoscaler's executor needs nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

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
    min_gpu_ram_gb: float | None = None


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
    gpu_ram_gb: float = 0.0


@dataclass(frozen=True, slots=True)
class WorkerLaunch:
    """How a new worker reaches its region's queue node. Secrets are kept out of repr and logs.

    `worker_id` is the id the worker registers under, so the autoscaler can tell when the machine it rented
    has joined (its provisioning lag) and which instance to destroy when it drains the worker.
    `token` is a long-lived worker token, for a machine we control (a local process); `enrolment_secret` is the
    one-time secret a rented machine trades for its own token (identity.EnrolmentService): a provider whose
    machines others can read (a marketplace) passes only that one on.
    """

    url: str
    token: str = field(repr=False)
    region: Region
    backend: str
    models: tuple[str, ...]
    slots: int = 1
    worker_id: str = ""
    enrolment_secret: str = field(default="", repr=False)


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


@runtime_checkable
class HostQuarantining(Protocol):
    """A provider that remembers bad hosts and never rents them again (Vast.ai). The fleet reports to it; a
    provider of machines we own (local processes) has no such memory and needs none."""

    def report_unhealthy(self, instance_id: str, reason: str) -> None:
        """Quarantine the instance's host at once."""
        ...

    def report_crash(self, instance_id: str) -> None:
        """Count a crash of the instance's worker; a provider quarantines the host after a few."""
        ...
