"""`is_outage` on the errors real stores raise: what the drivers say when the database is away, and when it
refuses a statement for what it holds."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ferryman import store
from tests.e2e.processes import free_port

PG = "127.0.0.1"
pytestmark = pytest.mark.anyio


async def _raised(engine: AsyncEngine, sql: str, params: dict[str, object] | None = None) -> BaseException:
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql), params or {})
    except Exception as exc:
        return exc
    raise AssertionError(f"{sql!r} did not fail")


@pytest.fixture
async def pg_db() -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    try:
        admin = await asyncpg.connect(host=PG, database="test", timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG}:5432 ({exc}); .ci/run starts it")
    name = f"ferryman_faults_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin, name
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_nothing_listening_is_an_outage() -> None:
    engine = create_async_engine(f"postgresql+asyncpg://{PG}:{free_port()}/none")
    try:
        assert store.is_outage(await _raised(engine, "SELECT 1"))
    finally:
        await engine.dispose()


async def test_a_database_refusing_connections_and_dropping_them_is_an_outage(
    pg_db: tuple[asyncpg.Connection, str],
) -> None:
    admin, name = pg_db
    engine = create_async_engine(f"postgresql+asyncpg://{PG}/{name}")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await admin.execute(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            )
            with pytest.raises(Exception) as dropped:
                await conn.execute(text("SELECT 1"))
        assert store.is_outage(dropped.value)
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await engine.dispose()
        assert store.is_outage(await _raised(engine, "SELECT 1"))
    finally:
        await engine.dispose()


async def test_a_statement_refused_for_what_it_holds_is_not_an_outage(
    pg_db: tuple[asyncpg.Connection, str],
) -> None:
    _, name = pg_db
    engine = create_async_engine(f"postgresql+asyncpg://{PG}/{name}")
    try:
        assert not store.is_outage(await _raised(engine, "SELECT CAST(:v AS text)", {"v": "a\x00b"}))
        assert not store.is_outage(await _raised(engine, "SELECT * FROM no_such_table"))
    finally:
        await engine.dispose()


async def test_a_locked_sqlite_store_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 0.05})
    try:
        assert store.is_outage(await _raised(engine, "INSERT INTO t VALUES (1)"))
    finally:
        holder.close()
        await engine.dispose()
