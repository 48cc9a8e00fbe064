"""The store's single writer: every write goes through one task that commits them in groups.

SQLite allows one writer at a time; funnelling writes through one task avoids lock contention, and committing
whatever has queued up meanwhile in one transaction (group commit) turns N commits into one under load while
each caller still waits for its own write to be durable before it acknowledges anything. Writes keep the order
they were submitted in.

Writes are plain functions of a synchronous Connection. For SQLite the whole group runs in one hop to a
dedicated thread holding its own connection (an async driver would hop threads once per statement, and that
dominated the latency of a job); for other databases the group runs on the async engine through `run_sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.store.engine import tune_sqlite

log = structlog.get_logger(__name__)

T = TypeVar("T")
Write = Callable[[Connection], Any]

MAX_GROUP = 256


class StoreWriter:
    def __init__(self, engine: AsyncEngine, *, name: str) -> None:
        self._engine = engine
        self._name = name
        self._pending: asyncio.Queue[tuple[Write, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._sync_engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        url = engine.url
        if url.get_backend_name() == "sqlite":
            self._sync_engine = create_engine(url.set(drivername="sqlite"))
            event.listen(self._sync_engine, "connect", tune_sqlite)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"store-writer-{name}")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"store-writer-{self._name}")

    async def stop(self) -> None:
        """Commit everything already submitted, then stop."""
        if self._task is None:
            return
        await self._pending.join()  # also waits for the group being committed now
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self._sync_engine is not None:
            self._sync_engine.dispose()

    def submit(self, write: Write) -> asyncio.Future[Any]:
        """Queue a write; the future resolves once it is committed (or raises what the write raised)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.put_nowait((write, future))
        return future

    async def write(self, write: Callable[[Connection], T]) -> T:
        result: T = await self.submit(write)
        return result

    async def _run(self) -> None:
        while True:
            group = [await self._pending.get()]
            while len(group) < MAX_GROUP and not self._pending.empty():
                group.append(self._pending.get_nowait())
            try:
                await self._commit(group)
            finally:
                for _ in group:
                    self._pending.task_done()

    async def _commit(self, group: list[tuple[Write, asyncio.Future[Any]]]) -> None:
        writes = [w for w, _ in group]
        try:
            if self._thread is not None:
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self._thread, self._commit_sync, writes)
            else:
                async with self._engine.begin() as conn:
                    results = await conn.run_sync(_apply, writes)
        except Exception as exc:
            if len(group) == 1:
                if not group[0][1].done():
                    group[0][1].set_exception(exc)
                return
            # one bad write must not fail its neighbours: retry each alone, in order
            for item in group:
                await self._commit([item])
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)

    def _commit_sync(self, writes: list[Write]) -> list[Any]:
        assert self._sync_engine is not None
        with self._sync_engine.begin() as conn:
            return _apply(conn, writes)


def _apply(conn: Connection, writes: list[Write]) -> list[Any]:
    return [write(conn) for write in writes]
