from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ferryman.clock import FakeClock
from tests.dispatch.harness import NodeHarness, open_harness


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def harness(tmp_path: Path, clock: FakeClock) -> AsyncIterator[NodeHarness]:
    async with open_harness(tmp_path, clock=clock) as h:
        yield h
