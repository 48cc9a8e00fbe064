"""Where worker machines come from: the Provider protocol and its local and Vast.ai implementations."""

from __future__ import annotations

from .base import (
    HostQuarantining,
    Instance,
    InstanceState,
    Offer,
    OfferQuery,
    Provider,
    ProviderError,
    WorkerLaunch,
)
from .local import DEFAULT_WORKER_COMMAND, LocalProvider
from .quarantine import Quarantine
from .vastai import DEFAULT_BASE_URL, EU_COUNTRIES, VastAIProvider

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_WORKER_COMMAND",
    "EU_COUNTRIES",
    "HostQuarantining",
    "Instance",
    "InstanceState",
    "LocalProvider",
    "Offer",
    "OfferQuery",
    "Provider",
    "ProviderError",
    "Quarantine",
    "VastAIProvider",
    "WorkerLaunch",
]
