from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman import store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def region_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated region store in a fresh SQLite file."""
    engine = store.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'region.db'}")
    try:
        await store.migrate(engine, "region")
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def writer(region_engine: AsyncEngine) -> AsyncIterator[store.StoreWriter]:
    writer = store.StoreWriter(region_engine, name="test")
    writer.start()
    try:
        yield writer
    finally:
        await writer.stop()
