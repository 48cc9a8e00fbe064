from __future__ import annotations

import pytest

from ferryman.autoscale.providers import Quarantine


def test_quarantine_round_trips_through_json_with_reasons() -> None:
    quarantine = Quarantine()
    quarantine.add("17", "health check failed: Xid 79")
    quarantine.add("17", "crash loop")  # the first reason stays
    restored = Quarantine.from_json(quarantine.to_json())
    assert (restored.hosts, restored.reason("17")) == (frozenset({"17"}), "health check failed: Xid 79")


def test_quarantine_from_json_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match="object mapping host ids to reasons"):
        Quarantine.from_json('["17"]')
