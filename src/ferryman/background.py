"""The container's task group for background work (sweepers, outbox consumers): started and stopped with the app.

Each piece of work is a named coroutine factory. `Background` runs it; when it crashes (raises anything but a
cancellation) the crash is logged with the exception's type (its text may quote a job) and counted, and the work
is started again after a back-off that doubles from `RESTART_FIRST_SECONDS` to `RESTART_MAX_SECONDS`. Work that
returns is done and not restarted. `stop` cancels everything and waits for it, so nothing outlives the app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0

Work = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class _Running:
    task: asyncio.Task[None]
    crashes: int = 0


class Background:
    """A supervised group of long-running tasks, owned by the app container."""

    def __init__(
        self,
        *,
        restart_first_seconds: float = RESTART_FIRST_SECONDS,
        restart_max_seconds: float = RESTART_MAX_SECONDS,
    ) -> None:
        self._first, self._max = restart_first_seconds, restart_max_seconds
        self._running: dict[str, _Running] = {}
        self._stopped = False

    def start(self, name: str, work: Work) -> None:
        """Run `work()` under `name` until it returns or the group stops; restart it whenever it crashes."""
        if self._stopped:
            raise RuntimeError("the background task group is stopped")
        if name in self._running:
            raise ValueError(f"background work {name!r} is already running")
        self._running[name] = _Running(
            asyncio.create_task(self._supervise(name, work), name=f"background-{name}")
        )

    async def _supervise(self, name: str, work: Work) -> None:
        delay = self._first
        while True:
            try:
                await work()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                running = self._running[name]
                running.crashes += 1
                log.error(
                    "background.crashed",
                    work=name,
                    error=type(exc).__name__,
                    crashes=running.crashes,
                    restart_in_seconds=delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max)
            log.info("background.restarted", work=name)

    def crashes(self, name: str) -> int:
        """How many times `name` crashed (and was restarted)."""
        running = self._running.get(name)
        return running.crashes if running else 0

    def is_running(self, name: str) -> bool:
        running = self._running.get(name)
        return running is not None and not running.task.done()

    async def stop(self) -> None:
        """Cancel every task and wait until each has ended."""
        self._stopped = True
        tasks = [r.task for r in self._running.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
