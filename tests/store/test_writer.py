from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.store import StoreWriter, tables

pytestmark = pytest.mark.anyio

m = tables.models
Write = Callable[[Connection], Any]


def add_model(name: str, *, seconds: float = 0.0) -> Write:
    def write(conn: Connection) -> str:
        time.sleep(seconds)  # a slow statement: the writer runs it off the event loop
        conn.execute(insert(m).values(name=name, tasks="[]", last_seen_at=0.0))
        return name

    return write


def fail(conn: Connection) -> None:
    raise ValueError("this write is broken")


async def model_names(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(m.c.name).order_by(m.c.name))).scalars())


@pytest.fixture
async def writer(region_engine: AsyncEngine) -> AsyncIterator[StoreWriter]:
    writer = StoreWriter(region_engine, name="test")
    writer.start()
    try:
        yield writer
    finally:
        await writer.stop()


async def test_store_writer_commits_every_concurrent_write(
    writer: StoreWriter, region_engine: AsyncEngine
) -> None:
    names = [f"model-{i:03d}" for i in range(200)]

    results = await asyncio.gather(*(writer.write(add_model(name)) for name in names))

    assert (results, await model_names(region_engine)) == (names, names)


async def test_store_writer_commits_concurrent_writes_in_groups(writer: StoreWriter) -> None:
    transactions: list[object] = []

    def count_group(conn: Connection) -> None:
        transactions.append(conn.get_transaction())  # kept alive, so each distinct one has its own id()

    def add_and_count(name: str) -> Write:
        def write(conn: Connection) -> None:
            count_group(conn)
            add_model(name)(conn)

        return write

    await asyncio.gather(*(writer.write(add_and_count(f"model-{i:03d}")) for i in range(200)))

    assert (len(transactions), len({id(t) for t in transactions}) <= 10) == (200, True)


async def test_store_writer_fails_only_the_failing_write_of_a_group(
    writer: StoreWriter,
    region_engine: AsyncEngine,
) -> None:
    results = await asyncio.gather(
        writer.write(add_model("before")),
        writer.write(fail),
        writer.write(add_model("after")),
        return_exceptions=True,
    )

    assert (
        [type(r).__name__ if isinstance(r, Exception) else r for r in results],
        await model_names(region_engine),
    ) == (["before", "ValueError", "after"], ["after", "before"])


async def test_store_writer_raises_database_error_to_its_caller(writer: StoreWriter) -> None:
    await writer.write(add_model("taken"))

    with pytest.raises(IntegrityError):
        await writer.write(add_model("taken"))


async def test_store_writer_returns_what_the_write_returns(writer: StoreWriter) -> None:
    def count(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(m)).scalar_one())

    assert await writer.write(count) == 0


async def test_store_writer_stop_commits_writes_still_queued(region_engine: AsyncEngine) -> None:
    writer = StoreWriter(region_engine, name="test")
    writer.start()
    futures = [writer.submit(add_model(f"model-{i}")) for i in range(5)]

    await writer.stop()

    assert ([f.result() for f in futures], await model_names(region_engine)) == (
        [f"model-{i}" for i in range(5)],
        [f"model-{i}" for i in range(5)],
    )


async def test_store_writer_stop_commits_write_in_progress(region_engine: AsyncEngine) -> None:
    writer = StoreWriter(region_engine, name="test")
    writer.start()
    future = writer.submit(add_model("slow", seconds=0.2))
    await asyncio.sleep(0.05)  # the writer has taken it off its queue and is running it

    await writer.stop()

    assert (future.done() and future.result(), await model_names(region_engine)) == ("slow", ["slow"])
