from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman import store

pytestmark = pytest.mark.anyio


async def schema(engine: AsyncEngine, version_table: str) -> tuple[list[str], list[str]]:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: sorted(inspect(sync).get_table_names()))
        versions = list((await conn.execute(text(f"SELECT version_num FROM {version_table}"))).scalars())
    return names, versions


@pytest.mark.parametrize("kind", ["global", "region"])
async def test_migrate_leaves_schema_alone_when_run_twice(
    tmp_path: Path, kind: Literal["global", "region"]
) -> None:
    engine = store.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    try:
        await store.migrate(engine, kind)
        once = await schema(engine, f"alembic_version_{kind}")

        await store.migrate(engine, kind)

        assert await schema(engine, f"alembic_version_{kind}") == once
    finally:
        await engine.dispose()


async def test_migrate_creates_every_region_table(region_engine: AsyncEngine) -> None:
    names, versions = await schema(region_engine, "alembic_version_region")

    assert (set(store.tables.region_metadata.tables) - set(names), len(versions)) == (set(), 1)


async def test_migrate_creates_every_global_table(tmp_path: Path) -> None:
    engine = store.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'global.db'}")
    try:
        await store.migrate(engine, "global")
        names, versions = await schema(engine, "alembic_version_global")

        assert (set(store.tables.global_metadata.tables) - set(names), len(versions)) == (set(), 1)
    finally:
        await engine.dispose()


async def test_create_engine_puts_sqlite_in_wal_mode(region_engine: AsyncEngine) -> None:
    async with region_engine.connect() as conn:
        mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()

    assert mode == "wal"


@pytest.mark.parametrize("kind", ["global", "region"])
async def test_migrations_build_exactly_the_declared_tables(tmp_path: Path, kind: str) -> None:
    engine = store.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    await store.migrate(engine, kind)  # type: ignore[arg-type]
    metadata = store.tables.global_metadata if kind == "global" else store.tables.region_metadata

    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"version_table": f"alembic_version_{kind}"})
        return [d for d in compare_metadata(context, metadata) if "alembic_version" not in str(d)]

    async with engine.connect() as conn:
        found = await conn.run_sync(diff)
    await engine.dispose()
    assert found == [], "a table or column changed without a migration: add one under store/migrations"
