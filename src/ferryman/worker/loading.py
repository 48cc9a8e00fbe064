"""Backends are plugins: found through the `ferryman.backends` entry-point group when the agent starts."""

from __future__ import annotations

from importlib.metadata import entry_points

from ferryman.errors import ConfigError
from ferryman.worker.backends.base import Backend, BackendSettings


def installed_backends() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="ferryman.backends"))


def load_backend(name: str, settings: BackendSettings) -> Backend:
    found = {ep.name: ep for ep in entry_points(group="ferryman.backends")}
    if name not in found:
        raise ConfigError(f"unknown backend {name!r}; installed: {sorted(found)}")
    backend: Backend = found[name].load()(settings)
    return backend
