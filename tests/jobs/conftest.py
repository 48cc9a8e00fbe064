from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ferryman import protocol as p
from ferryman.clock import FakeClock
from ferryman.config import Settings
from ferryman.container import Container, open_container
from ferryman.types import Region, Task


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def container(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Container]:
    """The real app container (US region only) that knows chat model `m` from a worker gone since."""
    settings = Settings(
        data_dir=tmp_path, regions=["us"], lease_check_interval_seconds=3600.0, event_retention_seconds=600.0
    )
    async with open_container(settings, clock=clock) as c:
        node = c.nodes[Region.US]
        node.detach(
            node.attach(
                p.Register(worker_id="w0", region="us", slots=1, models=(p.ModelOffer("m", (Task.CHAT,)),)),
                send=lambda frame: None,
                close=lambda: None,
            )
        )
        yield c
