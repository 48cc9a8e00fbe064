"""Hosts we never rent again: they failed a GPU health check or kept crashing our workers.

A marketplace host that is broken stays listed and cheap, so without a memory the autoscaler would
rent it again and again. The set is plain data the caller persists (to_json / from_json).
"""

from __future__ import annotations

import json
from collections.abc import Mapping


class Quarantine:
    """Host ids with the reason each was quarantined. Adding a host twice keeps the first reason."""

    def __init__(self, hosts: Mapping[str, str] | None = None) -> None:
        self._reasons: dict[str, str] = dict(hosts or {})

    def add(self, host_id: str, reason: str) -> None:
        self._reasons.setdefault(host_id, reason)

    def __contains__(self, host_id: object) -> bool:
        return host_id in self._reasons

    def __len__(self) -> int:
        return len(self._reasons)

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset(self._reasons)

    def reason(self, host_id: str) -> str | None:
        return self._reasons.get(host_id)

    def items(self) -> list[tuple[str, str]]:
        """(host id, reason) pairs, sorted by host id."""
        return sorted(self._reasons.items())

    def to_json(self) -> str:
        return json.dumps(self._reasons, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Quarantine:
        """Raises ValueError unless `text` is a JSON object of strings to strings."""
        data = json.loads(text)
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ValueError("quarantine JSON must be an object mapping host ids to reasons")
        return cls(data)
