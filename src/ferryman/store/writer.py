"""The store's single writer: every write goes through one task that commits them in groups.

SQLite allows one writer at a time; funnelling writes through one task avoids lock contention, and committing
whatever has queued up meanwhile in one transaction (group commit) turns N fsyncs into one under load while each
caller still waits for its own write to be durable before it acknowledges anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = structlog.get_logger(__name__)

T = TypeVar("T")
Write = Callable[[AsyncConnection], Awaitable[Any]]

MAX_GROUP = 256


class StoreWriter:
    def __init__(self, engine: AsyncEngine, *, name: str) -> None:
        self._engine = engine
        self._name = name
        self._pending: asyncio.Queue[tuple[Write, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"store-writer-{self._name}")

    async def stop(self) -> None:
        """Commit everything already submitted, then stop."""
        if self._task is None:
            return
        while not self._pending.empty():
            await asyncio.sleep(0.01)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    def submit(self, write: Write) -> asyncio.Future[Any]:
        """Queue a write; the future resolves once it is committed (or raises what the write raised)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.put_nowait((write, future))
        return future

    async def write(self, write: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        result: T = await self.submit(write)
        return result

    async def _run(self) -> None:
        while True:
            group = [await self._pending.get()]
            while len(group) < MAX_GROUP and not self._pending.empty():
                group.append(self._pending.get_nowait())
            await self._commit(group)

    async def _commit(self, group: list[tuple[Write, asyncio.Future[Any]]]) -> None:
        results: list[Any] = []
        try:
            async with self._engine.begin() as conn:
                for write, _ in group:
                    results.append(await write(conn))
        except Exception as exc:
            if len(group) == 1:
                _, future = group[0]
                if not future.done():
                    future.set_exception(exc)
                return
            # one bad write must not fail its neighbours: retry each alone
            for item in group:
                await self._commit([item])
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)

